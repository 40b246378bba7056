"Print one line naming the versions a test leg runs with: `python scripts/versions.py LABEL`."
import importlib.metadata as md, sys, multilabel_regress
ps = 'multilabel_regress fastai fastcore torch torchvision pandas numpy pillow scikit-learn matplotlib safetensors accelerate'.split()
print(f"{sys.argv[1] if len(sys.argv) > 1 else 'versions'}: python {sys.version.split()[0]}",
      ' '.join(f'{p}=={md.version(p)}' for p in ps), '| package at', multilabel_regress.__path__[0])
