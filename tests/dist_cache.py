"""Build `pascal_dls` (a cold image cache) in every process torchrun launched, and record what each rank decoded.

    torchrun --standalone --nproc_per_node 2 tests/dist_cache.py PASCAL OUT

Launched by tests/test_cache_robust.py (not collected by pytest). Every rank writes OUT/rank{r}.json: how many images
its training cache decoded, the pixel file it maps and a checksum of its training images' pixels."""
import hashlib, json, sys
from pathlib import Path
from multilabel_regress.distributed import distrib_setup, rank, distrib_teardown, gather_object
from multilabel_regress.pascal_data import pascal_dls

if __name__ == '__main__':
    path,out = Path(sys.argv[1]),Path(sys.argv[2])
    distrib_setup(); gather_object(None)  # both ranks in the group before either builds
    dls = pascal_dls(path, size=32, bs=4, num_workers=0)
    c = next(t for t in dls.train_ds.tls[0].tfms.fs if getattr(t, 'cache', None) is not None).cache
    (out/f'rank{rank()}.json').write_text(json.dumps(dict(built=c.built, path=str(c.path), sha=hashlib.sha256(c.pixels[c.order].tobytes()).hexdigest())))
    gather_object(None); distrib_teardown()
