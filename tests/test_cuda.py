"Checks that need a CUDA GPU: skipped without one (see conftest.py); run them where a GPU is lent."
import pytest, torch
from multilabel_regress.models import model_outputs, save_model, load_model
from multilabel_regress.archs import build_model
from multilabel_regress.preprocessing import DataSpec

SPEC = DataSpec('centre_crop', (64,64), targets=dict(kind='labels', vocab=[f'c{i}' for i in range(20)]))
META = dict(task='multilabel', arch='xresnet_small', n_out=20, data=SPEC.to_dict(), thresholds=[0.5]*20)

@pytest.fixture
def no_tf32():
    "Full fp32 convolutions: by default cuDNN uses TF32 (10-bit mantissa), which differs from the CPU by ~1e-3."
    old = torch.backends.cudnn.allow_tf32; torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old

@pytest.mark.cuda
def test_outputs_same_on_gpu(pascal, tmp_path, no_tf32):
    torch.manual_seed(0); m = build_model(META).eval()
    files = sorted((pascal/'train').glob('*.jpg'))[:8]
    cpu = model_outputs(m, META, files)
    gpu = model_outputs(m.cuda(), META, files)
    torch.testing.assert_close(cpu, gpu, rtol=1e-3, atol=1e-3)
    d = save_model(m, tmp_path/'m', META)  # weights saved from the GPU load on the CPU
    torch.testing.assert_close(model_outputs(load_model(d)[0], META, files), cpu, rtol=1e-4, atol=1e-4)

@pytest.mark.cuda
def test_bf16_channels_last_close():
    torch.manual_seed(0); m = build_model(META).cuda().eval()
    x = torch.randn(16,3,64,64, device='cuda')
    ref = m(x)
    m2 = m.to(memory_format=torch.channels_last)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = m2(x.to(memory_format=torch.channels_last)).float()
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
