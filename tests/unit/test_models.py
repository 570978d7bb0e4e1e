"""Models: shapes and the sampling contract, the D/G schedule, EMA, and each quality lever doing what it says."""

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from synthset.errors import SynthsetError
from synthset.models import DCGAN, MODEL_REGISTRY, WGANGP, BetaVAE, GenerativeModel
from synthset.models.blocks import ConditionalBatchNorm2d, ConvDiscriminator, MinibatchStdDev
from synthset.models.losses import optimal_log_sigma, reconstruction_nll

MODELS = [DCGAN, WGANGP, BetaVAE]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_sample_shape_and_determinism(cls: type[GenerativeModel], image_size: int) -> None:
    model = cls(channels=3, image_size=image_size, width=8)
    a = model.sample(5, generator=torch.Generator().manual_seed(1))
    b = model.sample(5, generator=torch.Generator().manual_seed(1))
    c = model.sample(5, generator=torch.Generator().manual_seed(2))
    assert a.shape == (5, 3, image_size, image_size) == (5, *model.image_shape)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert model.num_classes == 0


def test_the_registry_names_every_model_by_its_checkpoint_name() -> None:
    assert {"dcgan": DCGAN, "wgan": WGANGP, "vae": BetaVAE} == MODEL_REGISTRY


def test_conditional_without_classes_is_refused() -> None:
    with pytest.raises(SynthsetError, match="model.conditional=true needs labeled data"):
        WGANGP(channels=1, image_size=16, conditional=True, num_classes=0)


@pytest.mark.parametrize("size", [8, 20, 128])
def test_unsupported_image_size_names_the_value(size: int) -> None:
    with pytest.raises(SynthsetError, match=f"image_size={size} is not supported"):
        DCGAN(channels=1, image_size=size)


def test_depth_scales_with_image_size() -> None:
    def stride2(m: torch.nn.Module) -> int:
        return sum(isinstance(x, torch.nn.ConvTranspose2d) for x in m.generator.modules())

    assert [stride2(DCGAN(1, s, width=8)) for s in (16, 32, 64)] == [2, 3, 4]


def test_wgan_critic_has_no_batch_norm_and_dcgan_discriminator_does() -> None:
    def has_bn(m: torch.nn.Module) -> bool:
        return any(isinstance(x, torch.nn.BatchNorm2d) for x in m.discriminator.modules())

    assert not has_bn(WGANGP(1, 32, width=8)) and has_bn(DCGAN(1, 32, width=8))


def fit_steps(model: GenerativeModel, batches: int) -> None:
    images = torch.rand(batches * 8, 1, 16, 16) * 2 - 1
    labels = torch.arange(batches * 8) % max(model.num_classes, 1)
    loader = DataLoader(TensorDataset(images, labels), batch_size=8)
    pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(model, loader)


def test_the_generator_steps_once_every_n_critic_critic_steps() -> None:
    model = WGANGP(1, 16, width=8, n_critic=3)
    fit_steps(model, 9)
    assert int(model.critic_steps) == 9 and int(model.generator_steps) == 3
    dcgan = DCGAN(1, 16, width=8)
    fit_steps(dcgan, 4)
    assert int(dcgan.critic_steps) == 4 and int(dcgan.generator_steps) == 4


def test_linear_lr_decay_falls_to_zero_at_max_steps_and_none_keeps_the_rate() -> None:
    seen: list[tuple[float, float]] = []

    class RecordRates(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            opt_g, opt_d = trainer.optimizers
            seen.append((opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]))

    loader = DataLoader(TensorDataset(torch.rand(32, 1, 16, 16) * 2 - 1, torch.zeros(32, dtype=torch.long)), batch_size=8)
    for decay in ("linear", "none"):
        seen.clear()
        model = DCGAN(1, 16, width=8, lr_decay=decay, lr_generator=1e-3, lr_discriminator=4e-3)
        pl.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[RecordRates()]).fit(model, loader)
        factors = [1.0, 0.75, 0.5, 0.25] if decay == "linear" else [1.0] * 4  # global_step 0, 2, 4, 6 of 8
        assert seen == pytest.approx([(1e-3 * f, 4e-3 * f) for f in factors])
    with pytest.raises(SynthsetError, match="lr_decay='cosine'"):
        DCGAN(1, 16, width=8, lr_decay="cosine")


def test_ema_averages_with_a_warm_up() -> None:
    model = DCGAN(1, 16, width=8, ema_decay=0.9)
    live = next(model.generator.parameters())
    averaged = next(model.ema.module.parameters())
    expected = averaged.detach().clone()
    for t, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        with torch.no_grad():
            live.fill_(value)
        model.update_ema()
        # First update copies; then decay min(0.9, (1 + t) / (10 + t)) with t updates so far.
        decay = 0.0 if t == 0 else min(0.9, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * value
        assert torch.allclose(averaged, expected, atol=1e-6)
    assert not torch.allclose(averaged, live)  # an average, not a copy
    assert float(averaged.mean()) < 4.0


def test_sampling_uses_the_weights_evaluation_chose() -> None:
    model = DCGAN(1, 16, width=8, ema_decay=0.999)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(torch.randn_like(p))  # the live weights drift from the EMA copy
    g = torch.Generator
    ema = model.sample(4, generator=g().manual_seed(0))
    model.use_ema.fill_(False)
    raw = model.sample(4, generator=g().manual_seed(0))
    assert not torch.equal(ema, raw)


def test_spectral_norm_keeps_every_discriminator_layer_at_unit_spectral_norm() -> None:
    d = ConvDiscriminator(1, 16, 8, num_classes=3, norm="none", spectral_norm=True)
    for _ in range(30):  # power iteration converges as D is used
        d(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0]))
    d.eval()
    weighted = [m for m in d.modules() if hasattr(m, "parametrizations")]
    assert len(weighted) == 4  # two convs at 16 px, the score layer and the projection embedding
    for module in weighted:
        sigma = float(torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2))
        assert sigma == pytest.approx(1.0, rel=0.05)


def test_minibatch_std_lets_d_tell_a_repeated_batch_from_a_varied_one() -> None:
    varied = torch.randn(8, 2, 4, 4)
    repeated = varied[:1].expand(8, -1, -1, -1)
    feature = MinibatchStdDev(group_size=4)(varied)[:, -1]
    # Groups are strided: images 0, 2, 4, 6 form the first group of 8 in groups of 4.
    expected = varied[0::2].std(dim=0, unbiased=False).mean()
    assert torch.allclose(feature[0], expected.expand(4, 4)) and torch.allclose(feature[0], feature[6])
    assert float(MinibatchStdDev()(repeated)[:, -1].abs().max()) < 1e-3
    assert MinibatchStdDev(group_size=4)(torch.randn(6, 2, 4, 4)).shape == (6, 3, 4, 4)  # 6 = 3 groups of 2
    torch.manual_seed(0)
    d = ConvDiscriminator(1, 16, 8, num_classes=3, norm="none", spectral_norm=True, minibatch_std=True)
    images, labels = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0])
    alone = d(images[:1].expand(4, -1, -1, -1), labels[:1].expand(4))
    assert not torch.allclose(d(images, labels)[0], alone[0])  # the same image scores differently in company
    plain = ConvDiscriminator(1, 16, 8, num_classes=3, norm="none", minibatch_std=False)
    assert torch.allclose(plain(images, labels)[:1], plain(images[:1], labels[:1]))


def test_conditional_batch_norm_conditions_g_without_a_concatenated_embedding() -> None:
    model = DCGAN(1, 16, width=8, conditional=True, num_classes=4, g_conditioning="cbn")
    assert model.generator.label_embedding is None and model.generator.project.in_features == 100
    norm = ConditionalBatchNorm2d(3, num_classes=2)
    with torch.no_grad():
        norm.gain.weight[1] = 2.0
    x = torch.randn(4, 3, 2, 2)
    assert torch.allclose(norm(x, torch.ones(4, dtype=torch.long)), 2 * norm(x, torch.zeros(4, dtype=torch.long)))


def test_the_gradient_penalty_constrains_d_on_the_augmented_tensors_it_saw() -> None:
    model = WGANGP(1, 16, width=8, diffaugment=["translation", "cutout"], n_critic=5)
    calls = []
    augment = model.augment
    model.augment = lambda x: calls.append(x.shape) or augment(x)
    optimizer = torch.optim.SGD(model.discriminator.parameters(), lr=0.0)
    model.manual_backward = lambda loss: loss.backward()
    model.discriminator_step(optimizer, torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16), None)
    assert len(calls) == 2  # real and fake once each; the interpolates are not augmented again


def test_the_gaussian_decoder_gives_beta_its_meaning() -> None:
    target = torch.zeros(2, 1, 4, 4)
    mean = torch.full_like(target, 0.1)
    # With sigma = 1 a 0.1 error costs almost nothing; with the fitted sigma it dominates the KL as it should.
    unit = reconstruction_nll(mean, target, "gaussian", 0.0)
    fitted_log_sigma = optimal_log_sigma(mean, target)
    assert float(fitted_log_sigma.exp()) == pytest.approx(0.1, rel=1e-4)
    fitted = reconstruction_nll(mean, target, "gaussian", fitted_log_sigma)
    assert float(unit) == pytest.approx(16 * (0.5 * 0.01 + 0.5 * math.log(2 * math.pi)), rel=1e-5)
    assert float(fitted) < float(unit) - 16 * 1.5  # a better density, in nats


def test_vae_bound_is_named_honestly_and_kl_warms_up() -> None:
    batch = (torch.rand(4, 1, 16, 16) * 2 - 1, torch.zeros(4, dtype=torch.long))
    assert "elbo" in BetaVAE(1, 16, width=8).losses(batch)
    bernoulli = BetaVAE(1, 16, width=8, likelihood="bernoulli").losses(batch)
    assert "elbo" not in bernoulli and "bernoulli_bound_unnormalized" in bernoulli
    warm = BetaVAE(1, 16, width=8, beta=4.0, kl_warmup_steps=100)
    assert warm.beta_now() == 0.0


def test_the_aggregate_prior_is_each_class_s_gaussian_of_the_posterior_draws_and_checkpoints_carry_it() -> None:
    vae = BetaVAE(1, 16, latent_dim=2, width=8, prior="aggregate", conditional=True, num_classes=2)
    standard = torch.Generator().manual_seed(0)
    assert torch.equal(vae.latents(4, torch.tensor([0, 1, 0, 1]), standard),  # nothing tracked yet: N(0, I)
                       torch.randn(4, 2, generator=torch.Generator().manual_seed(0)))
    source = torch.Generator().manual_seed(1)
    means, scales = torch.tensor([[3.0, -2.0], [-4.0, 1.0]]), torch.tensor([[0.5, 2.0], [1.0, 0.25]])
    for _ in range(200):
        labels = torch.arange(64) % 2
        vae.track_latents(means[labels] + scales[labels] * torch.randn(64, 2, generator=source), labels)
    restored = BetaVAE(1, 16, latent_dim=2, width=8, prior="aggregate", conditional=True, num_classes=2)
    restored.load_state_dict(vae.state_dict())
    labels = torch.arange(20_000) % 2
    z = restored.latents(20_000, labels, torch.Generator().manual_seed(2))
    for c in (0, 1):
        drawn = z[labels == c]
        assert torch.allclose(drawn.mean(0), means[c], atol=0.1)
        assert torch.allclose(drawn.std(0), scales[c], rtol=0.1)
    # A temperature scales each class's spread around its own mean, not around 0.
    hot = restored.latents(20_000, labels, torch.Generator().manual_seed(2), temperature=1.5)
    for c in (0, 1):
        assert torch.allclose(hot[labels == c].mean(0), means[c], atol=0.15)
        assert torch.allclose(hot[labels == c].std(0), 1.5 * scales[c], rtol=0.1)
    assert BetaVAE(1, 16, latent_dim=2, width=8).state_dict().keys() < vae.state_dict().keys()  # standard: no buffers
    with pytest.raises(SynthsetError, match="model.prior='learned' is unknown"):
        BetaVAE(1, 16, width=8, prior="learned")


@pytest.mark.parametrize("cls", MODELS)
def test_temperature_one_is_the_prior_as_trained_and_zero_spread_is_one_image(cls: type[GenerativeModel]) -> None:
    model = cls(channels=1, image_size=16, width=8, conditional=True, num_classes=3)
    labels = torch.tensor([0, 1, 2, 0])
    plain = model.sample(4, labels, torch.Generator().manual_seed(3))
    assert torch.equal(plain, model.sample(4, labels, torch.Generator().manual_seed(3), temperature=1.0))
    assert not torch.equal(plain, model.sample(4, labels, torch.Generator().manual_seed(3), temperature=1.5))
    frozen = model.sample(4, labels, torch.Generator().manual_seed(3), temperature=1e-9)  # every draw at the mean
    assert torch.allclose(frozen[0], frozen[3], atol=1e-5) and not torch.allclose(frozen[0], frozen[1], atol=1e-5)
