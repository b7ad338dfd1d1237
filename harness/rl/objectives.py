"""Policy-gradient objectives for group-sampled LLM RL: CISPO and its unified masked form (MiniMax-M1,
arXiv 2506.13585, Eq. 4-7), GRPO (DeepSeekMath, arXiv 2402.03300, Eq. 3-4) and DAPO (arXiv 2503.14476,
Eq. 8-10).

Shared notation. A prompt q has a group of G responses o_1..o_G sampled from π_old; R_i is the reward
of o_i and o_{i,t} its t-th token.
    r_{i,t}(θ) = π_θ(o_{i,t} | q, o_{i,<t}) / π_old(o_{i,t} | q, o_{i,<t})            (token IS ratio)
    Â_{i,t}   = (R_i − mean_j R_j) / std_j R_j                                          (M1 Eq. 2, GRPO
                 outcome supervision, DAPO Eq. 9: every token of o_i gets its response's advantage)

Tensor layout. `logp`, `old_logp`, `mask`: [B, T], one row per response, B = (number of groups) × G with
each group's rows contiguous (rows g·G … g·G+G−1 answer one prompt). `logp` = log π_θ of the sampled
tokens (carries the gradient); `old_logp` = log π_old of the same tokens (no gradient); `mask` is 1 on
response tokens, 0 on padding. `advantages`: [B] (one per response) or [B, T].

Every loss is −J (minimise it) and comes back as a `PolicyLoss` whose `clipped` is the share of response
tokens whose gradient the clipping changed (a clipped IS weight, or a token dropped by the PPO clip).
"""
from typing import NamedTuple

import torch


class PolicyLoss(NamedTuple):
    loss: torch.Tensor  # scalar, −J
    clipped: torch.Tensor  # scalar in [0, 1]: share of response tokens whose gradient clipping changed


# ---- advantages and group filters -----------------------------------------------------------------
def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Â_i = (R_i − mean_j R_j) / std_j R_j within each group of `group_size` consecutive rewards.

    std is the unbiased (Bessel-corrected) sample std, as torch's default and the GRPO/DAPO reference
    trainers (TRL, verl) use; a group whose rewards are all equal has std 0 and gets Â = 0 (it carries
    no learning signal) instead of 0/0. Returns [B] in float32 (float64 stays float64)."""
    rewards = rewards.to(torch.float64 if rewards.dtype == torch.float64 else torch.float32)
    grouped = _grouped(rewards, group_size, "rewards")
    if group_size < 2:
        raise ValueError("group-normalised advantages need group_size >= 2")
    centred = grouped - grouped.mean(1, keepdim=True)
    std = grouped.std(1, keepdim=True)
    return torch.where(std > 0, centred / std.clamp_min(torch.finfo(std.dtype).tiny), 0.0).reshape(-1)


def informative_groups(correct: torch.Tensor, group_size: int) -> torch.Tensor:
    """DAPO dynamic sampling (Eq. 8's constraint 0 < |{o_i | is_equivalent(a, o_i)}| < G): True for the
    groups that are neither all-correct nor all-wrong. `correct`: [B] bool. Returns [B / G] bool."""
    solved = _grouped(correct.bool(), group_size, "correct").sum(1)
    return (solved > 0) & (solved < group_size)


# ---- CISPO and the unified form ---------------------------------------------------------------------
def unified_loss(logp, old_logp, advantages, mask, group_size: int, *,
                 eps_is_low: float | None = None, eps_is_high: float | None = None,
                 eps_low: float | None = None, eps_high: float | None = None) -> PolicyLoss:
    """MiniMax-M1 Eq. 6-7, the unified form:

        J_unify(θ) = E[ 1/(Σ_{i=1}^G |o_i|) · Σ_i Σ_t sg(r̂_{i,t}(θ)) · Â_{i,t} · log π_θ(o_{i,t} | q, o_{i,<t}) · M_{i,t} ]

        r̂_{i,t} = clip(r_{i,t}, 1 − ε^IS_low, 1 + ε^IS_high)                    (Eq. 5; sg = stop-gradient)
        M_{i,t} = 0 if Â_{i,t} > 0 and r_{i,t} > 1 + ε_high
                  0 if Â_{i,t} < 0 and r_{i,t} < 1 − ε_low
                  1 otherwise                                                    (Eq. 7)

    The expectation over prompts is the mean over groups, each group normalised by its own total
    response length Σ_i |o_i| (token-level normalisation). A bound given as None is absent (no IS clip on
    that side / no mask on that side). With M ≡ 1 this is CISPO (Eq. 4); with the IS clip off and
    (ε_low, ε_high) set, its gradient is the PPO/GRPO clipped-surrogate gradient: r·Â·∇log π inside the
    trust region, 0 for the tokens the PPO clip drops.

    Gradient w.r.t. logp_{i,t} (what the tests check): −r̂_{i,t} Â_{i,t} M_{i,t} / (Σ_{i∈g}|o_i| · #groups)."""
    A = _token_advantages(advantages, logp)
    _check(logp, old_logp, A, mask, group_size)
    ratio = torch.exp(logp - old_logp).detach()
    low = None if eps_is_low is None else 1 - eps_is_low
    high = None if eps_is_high is None else 1 + eps_is_high
    weight = ratio if low is None and high is None else ratio.clamp(min=low, max=high)
    keep = torch.ones_like(ratio, dtype=torch.bool)
    if eps_high is not None:
        keep &= ~((A > 0) & (ratio > 1 + eps_high))
    if eps_low is not None:
        keep &= ~((A < 0) & (ratio < 1 - eps_low))
    objective = weight * A * logp * keep
    clipped = (weight != ratio) | ~keep
    return PolicyLoss(-group_token_mean(objective, mask, group_size), _share(clipped, mask))


def cispo_loss(logp, old_logp, advantages, mask, group_size: int, *,
               eps_is_high: float = 0.28, eps_is_low: float | None = None) -> PolicyLoss:
    """CISPO, MiniMax-M1 Eq. 4-5:

        J_CISPO(θ) = E[ 1/(Σ_{i=1}^G |o_i|) · Σ_i Σ_t sg(r̂_{i,t}(θ)) · Â_{i,t} · log π_θ(o_{i,t} | q, o_{i,<t}) ]
        r̂_{i,t}(θ) = clip(r_{i,t}(θ), 1 − ε^IS_low, 1 + ε^IS_high)

    Every token keeps its gradient; only the (stop-gradient) IS weight is bounded.
    Defaults: the paper "did not impose a lower bound on the IS weight by setting ε^IS_low to a large
    value" and "only tuned ε^IS_high", so ε^IS_low = None (no lower bound). The paper gives no value for
    ε^IS_high; 0.28 is our choice: DAPO's ε_high, so a CISPO-vs-DAPO run differs in clip-the-weight vs
    drop-the-token only, not in the bound."""
    return unified_loss(logp, old_logp, advantages, mask, group_size, eps_is_low=eps_is_low, eps_is_high=eps_is_high)


# ---- PPO-clip family: DAPO and GRPO -----------------------------------------------------------------
def clipped_surrogate(logp, old_logp, A, eps_low: float, eps_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token min(r·Â, clip(r, 1 − ε_low, 1 + ε_high)·Â) and where the clipped branch is the active
    (constant, zero-gradient) one."""
    ratio = torch.exp(logp - old_logp)
    unclipped, clipped = ratio * A, ratio.clamp(1 - eps_low, 1 + eps_high) * A
    return torch.minimum(unclipped, clipped), (clipped < unclipped).detach()


def dapo_loss(logp, old_logp, advantages, mask, group_size: int, *,
              eps_low: float = 0.2, eps_high: float = 0.28) -> PolicyLoss:
    """DAPO, arXiv 2503.14476 Eq. 8 (clip-higher + token-level policy-gradient loss, no KL term):

        J_DAPO(θ) = E[ 1/(Σ_{i=1}^G |o_i|) · Σ_i Σ_t min( r_{i,t}(θ) Â_{i,t}, clip(r_{i,t}(θ), 1 − ε_low, 1 + ε_high) Â_{i,t} ) ]
        s.t. 0 < |{o_i | is_equivalent(a, o_i)}| < G

    Defaults ε_low = 0.2, ε_high = 0.28 (the paper's clip-higher setting). The constraint (dynamic
    sampling) is applied to the batch before the loss: see `informative_groups`."""
    A = _token_advantages(advantages, logp)
    _check(logp, old_logp, A, mask, group_size)
    surrogate, clipped = clipped_surrogate(logp, old_logp, A, eps_low, eps_high)
    return PolicyLoss(-group_token_mean(surrogate, mask, group_size), _share(clipped, mask))


def grpo_loss(logp, old_logp, advantages, mask, group_size: int, *, ref_logp=None,
              eps: float = 0.2, beta: float = 0.04) -> PolicyLoss:
    """GRPO, DeepSeekMath arXiv 2402.03300 Eq. 3 with the KL estimator of Eq. 4:

        J_GRPO(θ) = E[ 1/G Σ_{i=1}^G 1/|o_i| Σ_t { min( r_{i,t} Â_{i,t}, clip(r_{i,t}, 1 − ε, 1 + ε) Â_{i,t} ) − β D_KL[π_θ || π_ref] } ]
        D_KL[π_θ || π_ref] = π_ref(o_{i,t}|·)/π_θ(o_{i,t}|·) − log(π_ref(o_{i,t}|·)/π_θ(o_{i,t}|·)) − 1

    Sequence-level normalisation: each response is averaged over its own length, then responses are
    averaged. Defaults: β = 0.04 (DeepSeekMath's KL coefficient); ε = 0.2, PPO's clip range, as the
    paper gives no value of its own. `ref_logp` (log π_ref of the sampled tokens) is needed when β > 0."""
    A = _token_advantages(advantages, logp)
    _check(logp, old_logp, A, mask, group_size)
    surrogate, clipped = clipped_surrogate(logp, old_logp, A, eps, eps)
    if beta:
        if ref_logp is None:
            raise ValueError("grpo_loss: beta > 0 needs ref_logp (log-probs of the reference policy)")
        if ref_logp.shape != logp.shape:
            raise ValueError(f"grpo_loss: ref_logp has shape {tuple(ref_logp.shape)}, logp {tuple(logp.shape)}")
        log_ref_ratio = ref_logp.detach() - logp
        surrogate = surrogate - beta * (torch.exp(log_ref_ratio) - log_ref_ratio - 1)
    return PolicyLoss(-sequence_mean(surrogate, mask), _share(clipped, mask))


# ---- normalisers ------------------------------------------------------------------------------------
def group_token_mean(values: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """(1/#groups) Σ_g (1/Σ_{i∈g} |o_i|) Σ_{i∈g} Σ_t values_{i,t}: M1 Eq. 4's and DAPO Eq. 8's
    normalisation by the group's total response length."""
    m = mask.to(values.dtype)
    B, T = values.shape
    total = (values * m).view(B // group_size, group_size * T).sum(1)
    length = m.view(B // group_size, group_size * T).sum(1).clamp_min(1)
    return (total / length).mean()


def sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/B) Σ_i (1/|o_i|) Σ_t values_{i,t}: GRPO's per-response length normalisation (1/G Σ_i 1/|o_i|
    per group; groups have equal G, so the mean over groups is the mean over responses)."""
    m = mask.to(values.dtype)
    return ((values * m).sum(1) / m.sum(1).clamp_min(1)).mean()


# ---- helpers ----------------------------------------------------------------------------------------
def _grouped(x: torch.Tensor, group_size: int, name: str) -> torch.Tensor:
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D [B], got shape {tuple(x.shape)}")
    if group_size < 1 or x.numel() % group_size:
        raise ValueError(f"{name}: {x.numel()} entries do not split into groups of {group_size}")
    return x.view(-1, group_size)


def _token_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if advantages.dim() == 1:
        if advantages.shape[0] != like.shape[0]:
            raise ValueError(f"advantages has {advantages.shape[0]} entries for {like.shape[0]} responses")
        advantages = advantages[:, None]
    return advantages.detach().to(like.dtype).expand_as(like)


def _check(logp, old_logp, A, mask, group_size: int):
    if logp.dim() != 2:
        raise ValueError(f"logp must be [B, T], got shape {tuple(logp.shape)}")
    for name, t in (("old_logp", old_logp), ("advantages", A), ("mask", mask)):
        if t.shape != logp.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logp {tuple(logp.shape)}")
    if group_size < 1 or logp.shape[0] % group_size:
        raise ValueError(f"{logp.shape[0]} responses do not split into groups of {group_size}")


def _share(flags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    return (flags & m).sum() / m.sum().clamp_min(1)
