"""GPU training-step throughput: resnet50 at 128 px, fp32 vs bf16 autocast + channels_last.

    python bench/gpu_step.py [--bs 64] [--steps 30]

Prints images/s for each mode and the compute-only seconds per epoch of 2501 images (VOC2007's
train split). Needs a CUDA GPU; exits 0 with a note where there is none.
"""
import argparse, time, datetime, json
import torch, torch.nn as nn, torchvision

def bench(mode, bs, steps, size=128):
    torch.manual_seed(0)
    m = torchvision.models.resnet50(num_classes=20).cuda()
    x = torch.randn(bs, 3, size, size, device='cuda'); y = (torch.rand(bs, 20, device='cuda') < .1).float()
    if mode == 'bf16_cl': m = m.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), 1e-3); lf = nn.BCEWithLogitsLoss()
    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=mode=='bf16_cl'):
            loss = lf(m(x).float(), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(5): step()
    torch.cuda.synchronize()
    s,e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(steps): step()
    e.record(); torch.cuda.synchronize()
    return bs*steps/(s.elapsed_time(e)/1000)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--bs', type=int, default=64); p.add_argument('--steps', type=int, default=30)
    a = p.parse_args()
    if not torch.cuda.is_available(): print('gpu_step: no CUDA GPU here; nothing measured'); return
    torch.backends.cudnn.benchmark = True
    res = dict(date=datetime.date.today().isoformat(), gpu=torch.cuda.get_device_name(), torch=torch.__version__,
               tf32_conv=torch.backends.cudnn.allow_tf32)
    for bs in sorted({a.bs, 256}):
        for mode in ('fp32', 'bf16_cl'):
            ips = bench(mode, bs, a.steps); res[f'{mode}_bs{bs}'] = round(ips, 1)
            print(f'resnet50 128px bs={bs} {mode:8}: {ips:8.0f} images/s, {2501/ips:6.2f} s per epoch of 2501 images (compute only)')
        print(f'bs={bs}: bf16+channels_last / fp32 = {res[f"bf16_cl_bs{bs}"]/res[f"fp32_bs{bs}"]:.2f}x (fp32 convolutions use TF32: {torch.backends.cudnn.allow_tf32})')
    print(json.dumps(res))

if __name__ == '__main__': main()
