"""RL objectives against their equations: losses and autograd gradients vs gradients worked out by hand.

The shared hand case: one group of G = 2 responses, rewards (1, 0), so Â = (R − 0.5)/std with the
unbiased std sqrt(0.5) → Â = (+a, −a), a = 1/√2. Response 0 has 3 tokens with ratios r = (1.0, 1.5, 0.5);
response 1 has 2 tokens with r = (1.1, 2.0) and one padding position. The group's total length is 5.
"""
import math

import pytest
import torch

from m1bench.harness.rl.objectives import (
    cispo_loss,
    dapo_loss,
    group_advantages,
    grpo_loss,
    informative_groups,
    unified_loss,
)

A = 2 ** -0.5
RATIOS = torch.tensor([[1.0, 1.5, 0.5], [1.1, 2.0, 1.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
LOGP = torch.log(torch.tensor([[0.5, 0.2, 0.1], [0.4, 0.3, 0.9]], dtype=torch.float64))


def hand_case():
    logp = LOGP.clone().requires_grad_(True)
    old_logp = LOGP - torch.log(RATIOS)  # so that exp(logp − old_logp) = RATIOS
    adv = group_advantages(torch.tensor([1.0, 0.0], dtype=torch.float64), group_size=2)
    return logp, old_logp, adv


def grad_of(loss_out, logp):
    (g,) = torch.autograd.grad(loss_out.loss, logp)
    return g


# ---- advantages and the DAPO filter -----------------------------------------------------------------
def test_group_advantages_by_hand():
    rewards = torch.tensor([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1], dtype=torch.float64)
    adv = group_advantages(rewards, group_size=4)
    # group 1: mean 0.5, unbiased var (4 · 0.25)/3 = 1/3 → ±0.5·√3; group 2: all equal → 0;
    # group 3: mean 0.25, unbiased var (3 · 0.0625 + 0.5625)/3 = 0.25 → std 0.5
    h = 0.5 * math.sqrt(3)
    expected = [h, -h, -h, h, 0, 0, 0, 0, -0.5, -0.5, -0.5, 1.5]
    torch.testing.assert_close(adv, torch.tensor(expected, dtype=torch.float64))


def test_hand_case_advantages():
    _, _, adv = hand_case()
    torch.testing.assert_close(adv, torch.tensor([A, -A], dtype=torch.float64))


def test_informative_groups_drop_all_correct_and_all_wrong():
    correct = torch.tensor([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    assert informative_groups(correct, group_size=4).tolist() == [True, False, False]


def test_bad_groups_are_rejected_with_the_count():
    with pytest.raises(ValueError, match="5 entries do not split into groups of 2"):
        group_advantages(torch.zeros(5), group_size=2)
    logp, old_logp, adv = hand_case()
    with pytest.raises(ValueError, match="4 responses do not split into groups of 3"):
        cispo_loss(logp.repeat(2, 1), old_logp.repeat(2, 1), adv.repeat(2), MASK.repeat(2, 1), group_size=3)
    with pytest.raises(ValueError, match="mask has shape"):
        dapo_loss(logp, old_logp, adv, MASK[:, :2], group_size=2)


# ---- CISPO (M1 Eq. 4-5) -----------------------------------------------------------------------------
def test_cispo_gradient_is_clipped_weight_times_advantage_over_group_length():
    logp, old_logp, adv = hand_case()
    out = cispo_loss(logp, old_logp, adv, MASK, group_size=2)  # ε^IS_high = 0.28, no lower bound
    # ∂(−J)/∂logp_{i,t} = −sg(r̂_{i,t}) Â_i / 5: r = 1.5 and 2.0 are clipped to 1.28, r = 0.5 is kept
    expected = torch.tensor([[-1.0 * A, -1.28 * A, -0.5 * A],
                             [+1.1 * A, +1.28 * A, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(grad_of(out, logp), expected)
    weights = torch.tensor([[1.0, 1.28, 0.5], [1.1, 1.28, 0.0]], dtype=torch.float64)
    value = -(weights * torch.tensor([[A], [-A]], dtype=torch.float64) * LOGP).sum() / 5
    torch.testing.assert_close(out.loss, value)
    assert out.clipped.item() == pytest.approx(2 / 5)


def test_cispo_lower_bound_when_given():
    logp, old_logp, adv = hand_case()
    out = cispo_loss(logp, old_logp, adv, MASK, group_size=2, eps_is_low=0.2)
    expected = torch.tensor([[-1.0 * A, -1.28 * A, -0.8 * A],
                             [+1.1 * A, +1.28 * A, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(grad_of(out, logp), expected)
    assert out.clipped.item() == pytest.approx(3 / 5)


def test_cispo_on_policy_is_the_plain_policy_gradient():
    """At r = 1 (first minibatch) nothing is clipped: the gradient is −Â/Σ|o_i| on every token."""
    logp = LOGP.clone().requires_grad_(True)
    adv = torch.tensor([A, -A], dtype=torch.float64)
    out = cispo_loss(logp, LOGP.clone(), adv, MASK, group_size=2)
    expected = torch.tensor([[-A, -A, -A], [A, A, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(grad_of(out, logp), expected)
    assert out.clipped.item() == 0


def test_token_normalisation_is_per_group_total_length():
    """Two groups of G = 2 with total lengths 2 and 6: each group is normalised by its own length, then
    groups are averaged (not one batch-wide token mean, which would give 1/8 everywhere)."""
    logp = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    adv = torch.tensor([A, -A, A, -A], dtype=torch.float64)
    out = cispo_loss(logp, logp.detach(), adv, mask, group_size=2)
    expected = torch.tensor([[-A / 2, 0, 0], [A / 2, 0, 0], [-A / 6] * 3, [A / 6] * 3], dtype=torch.float64) / 2
    torch.testing.assert_close(grad_of(out, logp), expected)


# ---- the unified form (M1 Eq. 6-7) ------------------------------------------------------------------
def test_unified_mask_drops_exactly_the_ppo_clipped_tokens():
    logp, old_logp, adv = hand_case()
    out = unified_loss(logp, old_logp, adv, MASK, group_size=2, eps_low=0.2, eps_high=0.28)
    # M = 0 only for Â > 0 and r > 1.28 (r = 1.5); Â < 0 with r = 2.0 keeps its full weight r = 2.0
    expected = torch.tensor([[-1.0 * A, 0.0, -0.5 * A],
                             [+1.1 * A, +2.0 * A, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(grad_of(out, logp), expected)
    assert out.clipped.item() == pytest.approx(1 / 5)


def test_unified_with_mask_equals_dapo_gradient_on_random_batches():
    """M1's claim: with M from Eq. 7 and no IS clip, the unified form has the PPO/DAPO clipped
    surrogate's gradient. Checked against dapo_loss (an independent min/clip implementation)."""
    g = torch.Generator().manual_seed(0)
    B, T, G = 12, 7, 4
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    old_logp = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.4  # ratios both sides of the clip
    mask = torch.rand(B, T, generator=g) < 0.8
    mask[:, 0] = True
    adv = group_advantages(torch.randint(0, 2, (B,), generator=g).double(), G)
    grads = []
    for fn in (lambda lp: unified_loss(lp, old_logp, adv, mask, G, eps_low=0.2, eps_high=0.28),
               lambda lp: dapo_loss(lp, old_logp, adv, mask, G, eps_low=0.2, eps_high=0.28)):
        lp = logp.clone().requires_grad_(True)
        out = fn(lp)
        grads.append((grad_of(out, lp), out.clipped))
    assert 0 < grads[0][1] < 1, "the random case must exercise clipped and unclipped tokens"
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


# ---- DAPO (Eq. 8) -----------------------------------------------------------------------------------
def test_dapo_clip_higher_by_hand():
    logp, old_logp, adv = hand_case()
    out = dapo_loss(logp, old_logp, adv, MASK, group_size=2)  # ε_low 0.2, ε_high 0.28
    # Â > 0: r = 1.0 and 0.5 are on the unclipped branch (gradient r·Â); r = 1.5 > 1.28 is clipped (0).
    # Â < 0: r = 1.1 is inside [0.8, 1.28]; r = 2.0 gives min(2Â, 1.28Â) = 2Â, unclipped.
    expected = torch.tensor([[-1.0 * A, 0.0, -0.5 * A],
                             [+1.1 * A, +2.0 * A, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(grad_of(out, logp), expected)
    objective = (1.0 * A + 1.28 * A + 0.5 * A) + (-1.1 * A - 2.0 * A)
    torch.testing.assert_close(out.loss, torch.tensor(-objective / 5, dtype=torch.float64))


def test_dapo_clip_higher_keeps_a_ratio_grpo_clips():
    """r = 1.25 with Â > 0: inside DAPO's 1 + 0.28, outside GRPO's 1 + 0.2."""
    logp = torch.zeros(2, 1, dtype=torch.float64, requires_grad=True)
    old = torch.log(torch.tensor([[1 / 1.25], [1.0]], dtype=torch.float64))
    adv = torch.tensor([A, -A], dtype=torch.float64)
    mask = torch.ones(2, 1, dtype=torch.bool)
    g_dapo = grad_of(dapo_loss(logp, old, adv, mask, 2), logp)
    g_grpo = grad_of(grpo_loss(logp, old, adv, mask, 2, beta=0.0), logp)
    torch.testing.assert_close(g_dapo, torch.tensor([[-1.25 * A], [A]], dtype=torch.float64) / 2)
    torch.testing.assert_close(g_grpo, torch.tensor([[0.0], [A / 2]], dtype=torch.float64) / 1)


# ---- GRPO (DeepSeekMath Eq. 3-4) --------------------------------------------------------------------
def test_grpo_sequence_normalisation_clip_and_kl_by_hand():
    logp, old_logp, adv = hand_case()
    ref_logp = LOGP.clone()
    ref_logp[0, 0] += math.log(2.0)  # π_ref/π_θ = 2 on token (0, 0), 1 elsewhere
    beta = 0.04
    out = grpo_loss(logp, old_logp, adv, MASK, group_size=2, ref_logp=ref_logp, eps=0.2, beta=beta)
    # surrogate gradients (ε = 0.2): Â>0: r=1.0 → 1.0·Â, r=1.5 clipped → 0, r=0.5 → 0.5·Â;
    # Â<0: r=1.1 → 1.1·Â (inside [0.8, 1.2]), r=2.0 → 2.0·Â. KL term −β(ρ − log ρ − 1), ρ = π_ref/π_θ:
    # ∂/∂logp = β(ρ − 1) = β on token (0, 0). Loss = −(1/2)[(1/3)Σ_t row 0 + (1/2)Σ_t row 1].
    expected = torch.tensor([[-(1.0 * A + beta) / 3, 0.0, -0.5 * A / 3],
                             [+1.1 * A / 2, +2.0 * A / 2, 0.0]], dtype=torch.float64) / 2
    torch.testing.assert_close(grad_of(out, logp), expected)
    kl = 2.0 - math.log(2.0) - 1.0
    row0 = (1.0 * A - beta * kl) + 1.2 * A + 0.5 * A
    row1 = -1.1 * A - 2.0 * A
    torch.testing.assert_close(out.loss, torch.tensor(-(row0 / 3 + row1 / 2) / 2, dtype=torch.float64))


def test_grpo_needs_reference_for_kl():
    logp, old_logp, adv = hand_case()
    with pytest.raises(ValueError, match="needs ref_logp"):
        grpo_loss(logp, old_logp, adv, MASK, group_size=2)
    grpo_loss(logp, old_logp, adv, MASK, group_size=2, beta=0.0)  # no KL term, no reference needed
