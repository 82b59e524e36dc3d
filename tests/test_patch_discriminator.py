"""The PatchGAN discriminator: layer layout, spectral norm, features, receptive field."""

import torch

from inpaintlab.networks.discriminators import PatchDiscriminator


def test_layers_follow_the_edgeconnect_layout():
    d = PatchDiscriminator(channels=2, spectral_norm=False)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert convs[0].in_channels == 2


def test_spectral_norm_is_on_every_conv_and_drops_biases():
    d = PatchDiscriminator()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(hasattr(c, "parametrizations") and c.bias is None for c in convs)


def test_features_end_with_the_logit_map():
    d = PatchDiscriminator(base_channels=8)
    logits, features = d.forward_with_features(torch.rand(2, 3, 64, 64))
    assert len(features) == 5 and features[-1] is logits
    assert logits.shape == (2, 1, 6, 6)


def test_each_logit_sees_a_70_pixel_patch():
    # 70 px receptive field; with padding 1 per layer the first logit's window is rows and
    # columns -23..46 (23 = the padding times the stride product of each layer, summed)
    d = PatchDiscriminator(base_channels=8, spectral_norm=False).eval()
    image = torch.rand(1, 3, 128, 128)
    far = image.clone()
    far[..., 47:, :] = torch.rand_like(far[..., 47:, :])
    far[..., :, 47:] = torch.rand_like(far[..., :, 47:])
    with torch.no_grad():
        assert torch.equal(d(image)[..., 0, 0], d(far)[..., 0, 0])
        near = image.clone()
        near[..., 46, 46] += 1
        assert not torch.equal(d(image)[..., 0, 0], d(near)[..., 0, 0])
