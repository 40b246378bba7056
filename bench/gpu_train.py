"""The package's own training on a GPU: the PASCAL pipeline (`pascal_dls` at its defaults) with resnet50 at 128 px (fp32, then with
`cuda_speedups`: pinned memory and non-blocking copies, bf16 autocast, channels_last), seconds per epoch
of VOC2007's 2501 training images, then the whole chapter (`mlr chapter`) on the sample data. Needs a CUDA GPU.

    python bench/gpu_train.py [--report DIR]
"""
import argparse, time, os, json, datetime
import torch
from pathlib import Path

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0]); p.add_argument('--report', default='report_gpu')
    p.add_argument('--cpu-smoke', action='store_true', help='a tiny run on the CPU, to check this script before spending GPU time')
    a = p.parse_args()
    if not torch.cuda.is_available() and not a.cpu_smoke: print('gpu_train: no CUDA GPU here; nothing measured'); return
    smoke = a.cpu_smoke
    from multilabel_regress.pascal_data import pascal_dls
    from multilabel_regress.multilabel import multilabel_learner
    from multilabel_regress.cli import chapter
    from multilabel_regress.cuda import cuda_speedups
    res = dict(date=datetime.date.today().isoformat(), gpu='cpu smoke test' if smoke else torch.cuda.get_device_name(), cpus=os.cpu_count())
    from gpu_pipeline import voc_sample
    path = voc_sample(smoke)
    for mode in ('fp32', 'cuda_speedups'):
        dls = pascal_dls(path, size=128, bs=16 if smoke else 64, seed=0)  # its defaults otherwise: cached, the batch crop on the GPU
        n = len(dls.train_ds)
        learn = multilabel_learner(dls, 'xresnet_small' if smoke else 'resnet50', pretrained=False)
        if mode == 'cuda_speedups': cuda_speedups(learn)  # on the CPU (--cpu-smoke) it changes nothing
        learn.fit(1, 1e-3)  # warm-up epoch: cudnn autotuning, workers starting
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        sync(); t = time.time(); learn.fit(1, 1e-3); sync(); s = time.time()-t
        res[mode] = dict(train_images=n, seconds_per_epoch=round(s,2), images_per_s=round(n/s,1),
                         seconds_per_2501=round(s*2501/n,2), valid_loss=round(float(learn.recorder.values[-1][0]),4))
        print(mode, res[mode], flush=True)
    print(json.dumps(res))
    t = time.time(); m = chapter(report=a.report, **(dict(ml_epochs=1, kp_epochs=1, pose_epochs=1) if smoke else {}))
    print(f'mlr chapter on the GPU: {time.time()-t:.0f} s')

if __name__ == '__main__': main()
