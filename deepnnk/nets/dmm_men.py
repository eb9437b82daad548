r"""DMM-MEN (Guo, Huang, Xing & Xing, NeurIPS 2018): a Gibbs sampler for a Dirichlet-process
mixture of linear regressions whose coefficients come from K shared Bayesian elastic nets.

Model (the authors' ``dmm-mem/code/dmm_men.r``; hyper-parameters in :class:`Priors`)::

    y_i | z_i = j  ~ N(x_iᵀβ_j, σ_j²)                  i = 1..n, j = 1..J (J = 6)
    π = stick-breaking(μ),  μ_j ~ Beta(1, α),  α ~ Gamma(e = 5, rate f = 1)
    c_j ~ Cat(w),  w ~ Dir(1/K, …, 1/K)                 (K = 3 shared elastic nets)
    β_j ~ N(0, σ_j²/λ2_c · diag(1 − τ_j)),  1/(1 − τ_jp) − 1 | … ~ InvGauss(λ1/(2λ2|β_jp|),
                                                                          λ1²/(4λ2σ_j²))
    σ_j² ~ IG(a = ½, b = ½)                             (Metropolis–Hastings, as in the code)
    λ1_k ~ Gamma(1, rate v/2),  λ2_k ~ Gamma(4, rate v/2),  v = 1   (Metropolis–Hastings)

One iteration updates, in the code's order: z (all points at once, Gumbel-max), μ and π, α, c,
w, then per component β, τ, σ², then λ of each elastic net. Where this differs from the R code:

- every block conditions on the *latest* values (a proper Gibbs scan). The R code draws τ from
  the previous iteration's β, σ² from the previous β and τ, and λ from the previous τ and σ²
  (a simultaneous update, which does not leave the posterior invariant in general);
- an empty component's β is redrawn from its prior given τ = ½ (the R code writes it to
  iteration 1, leaving β = 0 at the current iteration, a slip);
- the λ Metropolis–Hastings ratio includes the Gamma priors and the Hastings factor of the
  positive-truncated N(λ, 2) proposal (the R code uses the τ-likelihood ratio alone);
- the τ-density ratios of the σ² and λ steps are computed in log space (the R code multiplies p
  densities and turns the resulting NaN into a rejection).

The σ² proposal IG(a + (n_j + 1)/2, b + ½(RSS + λ2 βᵀ diag(1 − τ)⁻¹ β)) and the τ-density
``prob_tau`` in its acceptance ratio are the code's, unchanged. Its acceptance falls as p grows
against n_j (``accept_sigma2`` reports it): ~0.65 at p = 12, ~0.4 at p = 64, 0.08–0.24 at
p = 300 with n = 5000, and 0 at p = 300 with n = 500, where σ² then keeps its initial draw.

Label switching: traces are kept in a label-free form (components ranked by size; the dominant
component is the largest one at each iteration), and per-component posterior means are aligned
after burn-in to the assignment at the end of burn-in by a linear assignment on the contingency
table (the code's ``solve_LSAP`` relabelling, with that reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.random import SeedSequence
from scipy.linalg import solve_triangular
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln, log_ndtr
from threadpoolctl import threadpool_limits

from .._progress import progress
from .._validation import as_numpy, check_features, check_finite, check_positive_int

MODES = ("mixture", "best")


@dataclass(frozen=True)
class Priors:
    """Hyper-parameters of the authors' MNIST run (``dmm_men.r``): J components, K elastic nets,
    α ~ Gamma(e, rate f), σ² ~ IG(a, b), λ1 ~ Gamma(L, rate v/2), λ2 ~ Gamma(R, rate v/2)."""

    J: int = 6
    K: int = 3
    e: float = 5.0
    f: float = 1.0
    a: float = 0.5
    b: float = 0.5
    L: float = 1.0
    R: float = 4.0
    v: float = 1.0


@dataclass
class DMMMENResult:
    """Traces and posterior summaries of :func:`fit`, for C chains of T iterations.

    Traces: ``beta_dominant [C, T, p]`` (β of the largest component at each iteration),
    ``sizes [C, T, J]`` (component sizes, largest first), ``sigma2 [C, T, J]`` (σ² in the same
    size order), ``alpha [C, T]``, ``lambdas [C, T, K, 2]`` (λ1, λ2 of each elastic net),
    ``loglik [C, T]`` (observed-data log-likelihood Σ_i log Σ_j π_j N(y_i; x_iᵀβ_j, σ_j²), nats),
    ``accept_sigma2 [C]`` and ``accept_lambda [C]`` (MH acceptance rates).

    Posterior means over iterations ≥ ``burn_in``: ``beta_mean [C, J, p]``, ``pi_mean [C, J]``,
    ``sigma2_mean [C, J]`` (per chain, labels aligned within the chain); ``beta_mixture [p]``
    (E[Σ_j π_j β_j], label-free, pooled over chains: the posterior-mean regression function) and
    ``beta_best [p]`` (E[β of the dominant component], pooled).
    """

    beta_dominant: np.ndarray
    sizes: np.ndarray
    sigma2: np.ndarray
    alpha: np.ndarray
    lambdas: np.ndarray
    loglik: np.ndarray
    accept_sigma2: np.ndarray
    accept_lambda: np.ndarray
    beta_mean: np.ndarray
    pi_mean: np.ndarray
    sigma2_mean: np.ndarray
    beta_mixture: np.ndarray
    beta_best: np.ndarray
    burn_in: int
    priors: Priors = field(default_factory=Priors)

    @property
    def dominant_component(self) -> np.ndarray:
        """``[C]``: per chain, the aligned label of the component with the largest mean π."""
        return np.argmax(self.pi_mean, axis=1)

    def predict(self, X, mode: str = "mixture") -> np.ndarray:
        """Posterior-mean prediction ``[n]`` for ``X [n, p]``: ``mode="mixture"`` is
        E[Σ_j π_j x β_j] (the mixture's mean), ``"best"`` is x · E[β of the dominant component]."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        X = check_features(X, "X")
        p = self.beta_best.shape[0]
        if X.shape[1] != p:
            raise ValueError(f"X has {X.shape[1]} features but the sampler was fit on {p}.")
        return X @ (self.beta_mixture if mode == "mixture" else self.beta_best)


# ----------------------------------------------------------------------------- the τ density
def _log_prob_tau(sum_inv_tau, sum_log_tau, p, sigma2, lam1, lam2):
    """log of the code's ``prob_tau`` (elementwise over broadcast σ², λ1, λ2): the density of
    τ_j ``[p]`` given σ², λ1, λ2, from its sufficient statistics Σ 1/τ and Σ log τ."""
    c = lam1**2 / (8.0 * sigma2 * lam2)
    return (
        -p * log_ndtr(-lam1 / np.sqrt(4.0 * sigma2 * lam2))
        + 0.5 * p * np.log(c / np.pi)
        - c * sum_inv_tau
        - 1.5 * sum_log_tau
        - p * np.log(2.0)
    )


def _tau_stats(inv_s):
    """Σ 1/τ and Σ log τ ``[J]`` from inv_s = 1/(1 − τ) ``[J, p]`` (τ = 1 − 1/inv_s)."""
    tau = 1.0 - 1.0 / inv_s
    return (1.0 / tau).sum(1), np.log(tau).sum(1)


def _logsumexp_rows(a):
    """log Σ_j exp(a_ij) ``[n]`` for ``a [n, J]`` (scipy's logsumexp costs more than the sum)."""
    m = a.max(1)
    return m + np.log(np.exp(a - m[:, None]).sum(1))


def _log_gamma_pdf(x, shape, rate):
    return shape * np.log(rate) - gammaln(shape) + (shape - 1) * np.log(x) - rate * x


def _positive_normal(rng, mean, sd):
    """N(mean, sd²) restricted to > 0, by rejection (the code's proposal for λ) ``[...]``."""
    out = rng.normal(mean, sd)
    bad = out <= 0
    while bad.any():
        out[bad] = rng.normal(mean[bad], sd)
        bad = out <= 0
    return out


# ----------------------------------------------------------------------------- one chain
# 1/(1 − τ) is kept in [1 + 1e-12, 1e12]: a |β| that underflows to 0 would send the
# inverse-Gaussian mean to infinity and the prior variance of that β to zero.
INV_S_RANGE = (1.0 + 1e-12, 1e12)


def _run_chain(X, y, n_iter, burn_in, pr: Priors, rng, show_progress, label):
    n, p = X.shape
    J, K = pr.J, pr.K
    log2pi = np.log(2 * np.pi)
    # Initialisation as in the code: α = e, μ ~ Beta(1, α), w ~ Dir(1/K), c ~ Cat(w), λ and σ²
    # from their priors, τ = ½ and β from its prior.
    alpha = pr.e
    mu = rng.beta(1.0, alpha, J - 1)
    w = rng.dirichlet(np.full(K, 1.0 / K))
    c = rng.choice(K, J, p=w)
    lam = np.column_stack([rng.gamma(pr.L, 2.0 / pr.v, K), rng.gamma(pr.R, 2.0 / pr.v, K)])
    sigma2 = 1.0 / rng.gamma(pr.a, 1.0 / pr.b, J)
    inv_s = np.full((J, p), 2.0)
    beta = rng.normal(size=(J, p)) * np.sqrt(sigma2 / lam[c, 1] / inv_s.T).T

    tr = {
        "beta_dominant": np.empty((n_iter, p)),
        "sizes": np.empty((n_iter, J), dtype=np.int64),
        "sigma2": np.empty((n_iter, J)),
        "alpha": np.empty(n_iter),
        "lambdas": np.empty((n_iter, K, 2)),
        "loglik": np.empty(n_iter),
    }
    acc_s = acc_l = 0
    tries_s = 0
    beta_sum, pi_sum, s2_sum = np.zeros((J, p)), np.zeros(J), np.zeros(J)
    beta_mix, beta_best = np.zeros(p), np.zeros(p)
    z_ref = None
    Xty_all = X * y[:, None]

    def log_joint(pi, beta, sigma2):
        """log π_j + log N(y_i; x_iᵀβ_j, σ_j²), ``[n, J]`` (the one n·p·J product a step)."""
        r = y[:, None] - X @ beta.T
        with np.errstate(divide="ignore"):
            lp = np.log(pi)
        return lp - 0.5 * (log2pi + np.log(sigma2)) - r**2 / (2 * sigma2)

    def pi_of(mu):
        rest = np.concatenate([[1.0], np.cumprod(1.0 - mu)])
        return np.concatenate([mu, [1.0]]) * rest

    pi = pi_of(mu)
    for t in progress(range(n_iter), show_progress, label):
        # 1. z: one categorical draw per point, all at once (Gumbel-max). The same matrix gives
        # the log-likelihood of the previous iteration's state, recorded there.
        lj = log_joint(pi, beta, sigma2)
        if t > 0:
            tr["loglik"][t - 1] = _logsumexp_rows(lj).sum()
        z = np.argmax(lj + rng.gumbel(size=lj.shape), axis=1)
        counts = np.bincount(z, minlength=J)
        # 2-3. stick-breaking weights: μ_j ~ Beta(1 + n_j, α + n_{>j})
        above = counts[::-1].cumsum()[::-1]
        mu = rng.beta(1.0 + counts[:-1], alpha + above[1:])
        mu = np.minimum(mu, 1.0 - 1e-16)  # keeps log(1 − μ) finite for the α step
        pi = pi_of(mu)
        # 4. α ~ Gamma(J + e − 1, rate f − Σ log(1 − μ_j))
        alpha = rng.gamma(J + pr.e - 1.0, 1.0 / (pr.f - np.log1p(-mu).sum()))
        # 5. c_j ∝ w_k N(β_j; 0, σ_j²/λ2_k diag(1 − τ_j)), for all (j, k) at once
        lam2 = lam[:, 1]
        quad = (beta**2 * inv_s).sum(1)  # βᵀ diag(1 − τ)⁻¹ β, [J]
        logdet = np.log(inv_s).sum(1)  # −log det diag(1 − τ)
        lc = (
            np.log(w)[None, :]
            - 0.5 * p * (log2pi + np.log(sigma2)[:, None] - np.log(lam2)[None, :])
            + 0.5 * logdet[:, None]
            - lam2[None, :] * quad[:, None] / (2 * sigma2[:, None])
        )
        c = np.argmax(lc + rng.gumbel(size=lc.shape), axis=1)
        # 6. w ~ Dir(1/K + #{j: c_j = k})
        w = rng.dirichlet(1.0 / K + np.bincount(c, minlength=K))
        w = np.maximum(w, 1e-300)  # a Dirichlet draw with tiny parameters can underflow to 0
        # 8. β, τ, σ² per component. Sorting the points by component makes each X_jᵀX_j one
        # contiguous product: n·p² for all components together.
        order = np.argsort(z, kind="stable")
        Xs, XYs, ys = X[order], Xty_all[order], y[order]
        bounds = np.concatenate([[0], np.cumsum(counts)])
        lam1_j, lam2_j = lam[c, 0], lam[c, 1]
        full = counts > 0
        inv_s[~full] = 2.0  # an empty component restarts from τ = ½, as in the code
        A = np.zeros((J, p, p))
        Xty = np.zeros((J, p))
        for j in np.flatnonzero(full):  # ≤ J = 6 components: a loop over components
            Xj = Xs[bounds[j] : bounds[j + 1]]
            A[j] = Xj.T @ Xj
            Xty[j] = XYs[bounds[j] : bounds[j + 1]].sum(0)
        diag = np.arange(p)
        A[:, diag, diag] += lam2_j[:, None] * inv_s
        # β ~ N(A⁻¹Xᵀy, σ²A⁻¹) with A = LLᵀ: β = L⁻ᵀ(L⁻¹Xᵀy + σε). For an empty component A is
        # the prior precision and Xᵀy = 0, so the same line draws β from its prior.
        Lc = np.linalg.cholesky(A)
        eps = rng.normal(size=(J, p)) * np.sqrt(sigma2)[:, None]
        for j in range(J):  # two triangular solves per component (p², not an LU's p³)
            u = solve_triangular(Lc[j], Xty[j], lower=True, check_finite=False) + eps[j]
            beta[j] = solve_triangular(Lc[j], u, lower=True, trans="T", check_finite=False)
        resid = ys - np.einsum("np,np->n", Xs, beta[np.repeat(np.arange(J), counts)])
        rss = np.bincount(np.repeat(np.arange(J), counts), weights=resid**2, minlength=J)
        # τ: 1/(1 − τ) − 1 ~ InvGauss(mean λ1/(2λ2|β|), shape λ1²/(4λ2σ²)), all (j, p) at once
        ig_mean = lam1_j[:, None] / (2 * lam2_j[:, None] * np.maximum(np.abs(beta), 1e-300))
        # (floored: a σ² drawn from its heavy-tailed IG(½, ½) prior can be astronomically large)
        ig_shape = np.maximum(lam1_j**2 / (4 * lam2_j * sigma2), 1e-300)
        ig_mean = np.minimum(ig_mean, INV_S_RANGE[1])
        draw = rng.wald(ig_mean, np.broadcast_to(ig_shape[:, None], ig_mean.shape))
        inv_s = np.where(full[:, None], np.clip(1.0 + draw, *INV_S_RANGE), inv_s)
        # σ²: the code's independence proposal, accepted by the ratio of τ-densities
        quad = (beta**2 * inv_s).sum(1)
        prop = 1.0 / rng.gamma(pr.a + (counts + 1) / 2, 1.0 / (pr.b + 0.5 * (rss + lam2_j * quad)))
        s_inv, s_log = _tau_stats(inv_s)
        log_a = _log_prob_tau(s_inv, s_log, p, prop, lam1_j, lam2_j) - _log_prob_tau(
            s_inv, s_log, p, sigma2, lam1_j, lam2_j
        )
        accept = np.log(rng.uniform(size=J)) < np.nan_to_num(log_a, nan=-np.inf)
        empty_draw = 1.0 / rng.gamma(pr.a, 1.0 / pr.b, J)  # empty: σ² from its prior
        sigma2 = np.where(full, np.where(accept, prop, sigma2), empty_draw)
        acc_s += int((accept & full).sum())
        tries_s += int(full.sum())
        # 9. λ of each elastic net: one MH step on (λ1, λ2) jointly, over its components
        s_inv, s_log = _tau_stats(inv_s)
        new = _positive_normal(rng, lam.copy(), np.sqrt(2.0))
        old_lp = _log_prob_tau(s_inv, s_log, p, sigma2, lam[c, 0], lam[c, 1])
        new_lp = _log_prob_tau(s_inv, s_log, p, sigma2, new[c, 0], new[c, 1])
        diff = np.nan_to_num(new_lp - old_lp, nan=-np.inf)
        log_a = np.bincount(c, weights=diff, minlength=K)
        for i, shape in ((0, pr.L), (1, pr.R)):
            log_a += _log_gamma_pdf(new[:, i], shape, pr.v / 2) - _log_gamma_pdf(
                lam[:, i], shape, pr.v / 2
            )
            # Hastings factor of the truncated proposal: q(λ|λ')/q(λ'|λ) = Φ(λ/√2)/Φ(λ'/√2)
            log_a += log_ndtr(lam[:, i] / np.sqrt(2.0)) - log_ndtr(new[:, i] / np.sqrt(2.0))
        take = np.log(rng.uniform(size=K)) < log_a
        lam = np.where(take[:, None], new, lam)
        acc_l += int(take.sum())

        # traces, label-free: components ranked by size, the dominant one first
        rank = np.argsort(-counts, kind="stable")
        tr["beta_dominant"][t] = beta[rank[0]]
        tr["sizes"][t] = counts[rank]
        tr["sigma2"][t] = sigma2[rank]
        tr["alpha"][t] = alpha
        tr["lambdas"][t] = lam
        if t >= burn_in:
            if z_ref is None:
                z_ref, perm = z, np.arange(J)
            else:
                table = np.bincount(z_ref * J + z, minlength=J * J).reshape(J, J)
                perm = linear_sum_assignment(-table)[1]  # current label matched to each ref
            beta_sum += beta[perm]
            pi_sum += pi[perm]
            s2_sum += sigma2[perm]
            beta_mix += pi @ beta
            beta_best += beta[rank[0]]
    tr["loglik"][n_iter - 1] = _logsumexp_rows(log_joint(pi, beta, sigma2)).sum()
    m = n_iter - burn_in
    summary = {
        "beta_mean": beta_sum / m,
        "pi_mean": pi_sum / m,
        "sigma2_mean": s2_sum / m,
        "beta_mixture": beta_mix / m,
        "beta_best": beta_best / m,
        "accept_sigma2": acc_s / max(tries_s, 1),
        "accept_lambda": acc_l / (K * n_iter),
    }
    return tr, summary


def fit(
    X,
    y,
    n_iter: int = 2000,
    n_chains: int = 4,
    seed: int = 0,
    burn_in: int | None = None,
    priors: Priors | None = None,
    show_progress: bool = True,
    blas_threads: int | None = 1,
) -> DMMMENResult:
    """Run ``n_chains`` independent Gibbs chains of ``n_iter`` iterations on ``X [n, p]``,
    ``y [n]`` (the code's targets: class log-odds, not standardised; no intercept).

    ``burn_in`` (default n_iter // 2, as the code's analysis) iterations are dropped from the
    posterior means, never from the traces. Chain c is seeded by the c-th child of
    ``np.random.SeedSequence(seed)``: the same seed gives the same traces.

    ``blas_threads`` caps the BLAS threads while sampling (threadpoolctl; None leaves them
    alone). One by default: an iteration's matrices are small (X_j is n_j × p, A_j is p × p),
    and on a loaded 2-core machine threaded OpenBLAS on them ran 30–100× slower here
    (n = 1000, p = 300: 0.4–3.7 s an iteration against 15 ms with one thread).
    """
    pr = Priors() if priors is None else priors
    X = np.ascontiguousarray(check_features(X, "X"), dtype=np.float64)
    y = as_numpy(y, "y", ndim=1).astype(np.float64)
    check_finite(y, "y")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}; they must match.")
    n_iter = check_positive_int(n_iter, "n_iter")
    n_chains = check_positive_int(n_chains, "n_chains")
    if n_iter < 2:
        raise ValueError(f"n_iter must be at least 2, got {n_iter}.")
    burn_in = n_iter // 2 if burn_in is None else burn_in
    if isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)):
        raise ValueError(f"burn_in must be an int, got {burn_in!r}.")
    if not 0 <= burn_in < n_iter:
        raise ValueError(f"burn_in must be in [0, n_iter) = [0, {n_iter}), got {burn_in}.")
    if pr.J < 2 or pr.K < 1:
        raise ValueError(f"priors need J >= 2 components and K >= 1 elastic nets, got {pr}.")
    with threadpool_limits(blas_threads, user_api="blas"):
        runs = [
            _run_chain(X, y, n_iter, burn_in, pr, rng, show_progress, f"DMM-MEN chain {i + 1}")
            for i, rng in enumerate(map(np.random.default_rng, SeedSequence(seed).spawn(n_chains)))
        ]
    traces = {key: np.stack([r[0][key] for r in runs]) for key in runs[0][0]}
    per = {key: np.stack([np.asarray(r[1][key]) for r in runs]) for key in runs[0][1]}
    return DMMMENResult(
        **traces,
        accept_sigma2=per["accept_sigma2"],
        accept_lambda=per["accept_lambda"],
        beta_mean=per["beta_mean"],
        pi_mean=per["pi_mean"],
        sigma2_mean=per["sigma2_mean"],
        beta_mixture=per["beta_mixture"].mean(0),
        beta_best=per["beta_best"].mean(0),
        burn_in=int(burn_in),
        priors=pr,
    )


# ----------------------------------------------------------------------------- diagnostics
def _rhat(draws):
    """Split-free R-hat (Gelman et al. BDA3) of ``draws [M, N, ...]`` (M chains of N draws)."""
    n = draws.shape[1]
    means = draws.mean(1)
    B = n * means.var(0, ddof=1)
    W = draws.var(1, ddof=1).mean(0)
    var = (n - 1) / n * W + B / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.where(W > 0, var / W, np.where(B > 0, np.inf, 1.0)))


def _rank_normal(draws):
    """Rank-normalised draws (Vehtari et al. 2021, eq. 14): Φ⁻¹((r − 3/8)/(S + 1/4)) over all
    M·N draws, ties averaged, separately for each trailing index."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    M, N = draws.shape[:2]
    flat = draws.reshape(M * N, -1)
    r = rankdata(flat, axis=0)
    return ndtri((r - 0.375) / (M * N + 0.25)).reshape(draws.shape)


def split_rhat(traces, rank_normalize: bool = True) -> np.ndarray | float:
    """Split-R̂ of ``traces [C, T, ...]`` (C chains of T draws; trailing axes are separate
    quantities): each chain is split into halves (an odd middle draw dropped), giving 2C chains.

    With ``rank_normalize`` (default), the rank-normalised split-R̂ of Vehtari, Gelman, Simpson,
    Carpenter & Bürkner (2021): the larger of the bulk R̂ (on rank-normalised draws) and the
    tail R̂ (on rank-normalised |draw − median|). Otherwise the classic split-R̂ of BDA3.
    Values near 1 indicate mixing; > 1.01 (their threshold) or > 1.1 (the older one) do not.
    Returns a float for ``[C, T]`` traces, else an array of the trailing shape.
    """
    x = np.asarray(traces, dtype=np.float64)
    if x.ndim < 2 or x.shape[1] < 4:
        raise ValueError(f"traces must be [chains, draws >= 4, ...], got shape {x.shape}.")
    check_finite(x.reshape(x.shape[0], -1), "traces")
    h = x.shape[1] // 2
    split = np.concatenate([x[:, :h], x[:, x.shape[1] - h :]], axis=0)
    if rank_normalize:
        bulk = _rhat(_rank_normal(split))
        tail = _rhat(_rank_normal(np.abs(split - np.median(split, axis=(0, 1)))))
        out = np.maximum(bulk, tail)
    else:
        out = _rhat(split)
    return float(out) if out.ndim == 0 else out
