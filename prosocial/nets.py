"""Policy/value networks with independent parameters per agent (specs.md §8.1).

The SSD baseline network ([EMUREL] Fig. A.2, SSD ``models/baseline_model.py``):

    rgb uint8[15, 15, 3] / 255 → Conv 6@3×3 valid, ReLU → flatten (13·13·6 = 1014)
    → Dense 32, tanh → Dense 32, tanh → LSTM 128 → policy logits Dense |A|, value Dense 1

Initialisation follows the reference (TF/Keras defaults where SSD sets nothing): the conv
kernel Glorot-uniform; the MLP and the value head "normalised columns" (a standard normal
matrix whose every output column is scaled to L2 norm ``hidden_init_scale`` = 1.0, resp.
``head_init_scale`` = 0.01); the policy logits Glorot-uniform (Keras default, specs.md §8.1
as corrected 2026-12-02); the LSTM input kernel Glorot-uniform, recurrent kernel
orthogonal, bias 0 except 1 on the forget gate (Keras ``unit_forget_bias``); biases 0.
Observations without ``"rgb"`` (vector observations ``{"obs": float[d]}``) skip the conv.
``lstm_size=None`` gives a feed-forward network (its carry is the empty tuple).

Independent parameter sets: every function takes parameters stacked on a leading axis P
(one set per agent, or per seed and agent, flattened) and inputs with the same leading
axis, ``[P, batch, ...]``. Dense layers are batched matmuls over P. The convolution is the
one place where batching parameter sets is slow on XLA:CPU: ``vmap`` of ``lax.conv`` becomes a
grouped convolution (4–8× slower than a loop over P, design.md), and XLA:CPU's own
convolution with 3 input and 6 output channels is itself slow. ``conv_impl="direct"`` (the
CPU default) writes the convolution as K·K·C broadcast multiply-adds, which XLA fuses into
one loop over the output (≈5× faster than ``lax.conv`` forward, batched over P for free),
with a hand-written gradient (row-window matmuls, ≈4× faster than XLA's). ``"xla"`` vmaps
``lax.conv`` (GPU default); ``"xla_loop"`` loops over P in Python (kept for benchmarks).

LSTM state: ``carry = (c, h)``, each ``float32[..., lstm_size]``; the carry is zeroed where
an episode starts (``start``), before the step that consumes the new episode's first
observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, Any]
Carry = tuple  # (c, h) or () for a feed-forward network


@dataclass(frozen=True)
class NetConfig:
    """Sizes and initialisation of the actor-critic network (defaults: SSD, specs.md §8.1)."""

    conv_filters: int = 6
    """Output channels of the single valid convolution on ``rgb`` observations."""
    conv_kernel: int = 3
    """Height and width of the convolution kernel (stride 1, valid padding)."""
    hidden_sizes: tuple[int, ...] = (32, 32)
    """Widths of the tanh MLP layers after the convolution (or on vector observations)."""
    lstm_size: int | None = 128
    """LSTM units (SSD 128, later papers 32); ``None`` for a feed-forward network."""
    hidden_init_scale: float = 1.0
    """Column norm of the normalised-columns init of the MLP kernels."""
    head_init_scale: float = 0.01
    """Column norm of the normalised-columns init of the value head (the policy logits are
    Glorot-uniform, specs.md §8.1)."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Activation of the MLP layers: tanh (SSD) or relu ([ECCLES] App. A, ours)."""
    conv_on_planes: bool = False
    """Also convolve image-shaped ``obs`` planes ``[H, W, C]`` (float, not divided by 255),
    as [ECCLES]' network does on the Coins grid; by default vector observations skip the
    convolution."""
    conv_impl: Literal["auto", "direct", "xla", "xla_loop"] = "auto"
    """How the convolution is computed (same function, different speed): ``auto`` = direct on
    CPU, xla elsewhere."""

    def __post_init__(self):
        for name in ("conv_filters", "conv_kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"NetConfig.{name} must be a positive integer, got {value!r}")
        sizes = tuple(self.hidden_sizes)
        if any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1
               for s in sizes):
            raise ValueError(f"NetConfig.hidden_sizes must be positive integers, got {sizes!r}")
        object.__setattr__(self, "hidden_sizes", sizes)
        if self.lstm_size is not None and (
                isinstance(self.lstm_size, bool) or not isinstance(self.lstm_size, int | np.integer)
                or self.lstm_size < 1):
            raise ValueError(f"NetConfig.lstm_size must be a positive integer or None "
                             f"(feed-forward), got {self.lstm_size!r}")
        for name in ("hidden_init_scale", "head_init_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"NetConfig.{name} must be positive, got {getattr(self, name)!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"NetConfig.activation must be tanh or relu, got {self.activation!r}")
        if self.conv_impl not in ("auto", "direct", "xla", "xla_loop"):
            raise ValueError(f"NetConfig.conv_impl must be auto, direct, xla or xla_loop, "
                             f"got {self.conv_impl!r}")

    @property
    def recurrent(self) -> bool:
        return self.lstm_size is not None

    def resolved_conv_impl(self) -> str:
        if self.conv_impl != "auto":
            return self.conv_impl
        return "direct" if jax.default_backend() == "cpu" else "xla"


# --- initialisers --------------------------------------------------------------------------


def normc(key: jax.Array, shape: tuple[int, int], scale: float) -> jax.Array:
    """Normalised columns: standard normal [in, out], each column scaled to norm ``scale``."""
    w = jax.random.normal(key, shape, jnp.float32)
    return w * (scale / jnp.sqrt(jnp.sum(w * w, axis=0, keepdims=True)))


def dense_params(key, n_in: int, n_out: int, scale: float) -> Params:
    """A Dense layer with normalised columns: kernel [in, out] from :func:`normc` (every
    output column of L2 norm ``scale``), bias [out] zero."""
    return {"kernel": normc(key, (n_in, n_out), scale), "bias": jnp.zeros((n_out,), jnp.float32)}


def glorot_dense(key, n_in: int, n_out: int) -> Params:
    """Keras's default Dense init: Glorot-uniform kernel (bound √(6 / (in + out))), zero bias."""
    return {"kernel": jax.nn.initializers.glorot_uniform()(key, (n_in, n_out), jnp.float32),
            "bias": jnp.zeros((n_out,), jnp.float32)}


def mlp_params(keys, n_in: int, sizes, scale: float, prefix: str = "mlp") -> Params:
    """The layers ``{prefix}_0, {prefix}_1, …`` of a tanh MLP (:func:`mlp`) with widths
    ``sizes`` on ``n_in`` inputs, each from :func:`dense_params` with one of ``keys`` (one
    key per layer, in order)."""
    keys = list(keys)
    if len(keys) != len(sizes):
        raise ValueError(f"mlp_params needs one key per layer: {len(keys)} keys, "
                         f"{len(sizes)} layers")
    params: Params = {}
    for i, (key, size) in enumerate(zip(keys, sizes, strict=True)):
        params[f"{prefix}_{i}"] = dense_params(key, n_in, size, scale)
        n_in = size
    return params


def lstm_params(input_key: jax.Array, recurrent_key: jax.Array, n_in: int,
                size: int) -> Params:
    """An LSTM layer (gate order i, f, g, o; :func:`lstm_cell`) as Keras initialises it:
    ``input_kernel`` [in, 4·size] Glorot-uniform (from ``input_key``), ``recurrent_kernel``
    [size, 4·size] orthogonal (from ``recurrent_key``), ``bias`` [4·size] zero except 1 on
    the forget gate (``unit_forget_bias``)."""
    return {
        "input_kernel": jax.nn.initializers.glorot_uniform()(
            input_key, (n_in, 4 * size), jnp.float32),
        "recurrent_kernel": jax.nn.initializers.orthogonal()(
            recurrent_key, (size, 4 * size), jnp.float32),
        "bias": jnp.zeros((4 * size,), jnp.float32).at[size:2 * size].set(1.0)}


def input_key(obs_keys) -> str:
    """The observation entry the network reads: ``rgb`` if present, else ``obs``."""
    if "rgb" in obs_keys:
        return "rgb"
    if "obs" in obs_keys:
        return "obs"
    raise ValueError(f"the network reads observation 'rgb' (image) or 'obs' (vector); "
                     f"got keys {sorted(obs_keys)}")


def conv_width(cfg: NetConfig, shape) -> int:
    """Features of the valid, stride-1 convolution of ``cfg`` over an [H, W, C] image:
    (H − k + 1)·(W − k + 1)·filters."""
    k = cfg.conv_kernel
    return (shape[0] - k + 1) * (shape[1] - k + 1) * cfg.conv_filters


def conv_params(key: jax.Array, shape, kernel: int, filters: int) -> Params:
    """The convolution's kernel ``[k, k, C, F]`` and bias for an [H, W, C] image, with
    Keras's Conv2D fans: fan_in = k·k·C, fan_out = k·k·F (the receptive field counts on both
    sides; JAX's glorot_uniform for a 4-d kernel agrees), bias zero."""
    if len(shape) != 3:
        raise ValueError(f"'rgb' observations must be [H, W, C], got shape {tuple(shape)}")
    h, w, c = shape
    k, f = kernel, filters
    if h < k or w < k:
        raise ValueError(f"'rgb' observation {h}×{w} is smaller than the {k}×{k} kernel")
    return {"kernel": jax.nn.initializers.glorot_uniform()(key, (k, k, c, f), jnp.float32),
            "bias": jnp.zeros((f,), jnp.float32)}


def init_params(cfg: NetConfig, key: jax.Array, obs_space, num_actions: int) -> Params:
    """One parameter set for an agent with observation space ``obs_space`` (a spaces.Dict)."""
    if num_actions < 1:
        raise ValueError(f"num_actions must be positive, got {num_actions}")
    spaces = obs_space.spaces
    name = input_key(spaces)
    shape = tuple(spaces[name].shape)
    keys = iter(jax.random.split(key, 5 + len(cfg.hidden_sizes)))
    params: Params = {}
    if name == "rgb" or (cfg.conv_on_planes and len(shape) == 3):
        params["conv"] = conv_params(next(keys), shape, cfg.conv_kernel, cfg.conv_filters)
        width = conv_width(cfg, shape)
    else:
        width = int(np.prod(shape)) if shape else 1
    params.update(mlp_params([next(keys) for _ in cfg.hidden_sizes], width, cfg.hidden_sizes,
                             cfg.hidden_init_scale))
    width = cfg.hidden_sizes[-1] if cfg.hidden_sizes else width
    if cfg.recurrent:
        params["lstm"] = lstm_params(next(keys), next(keys), width, cfg.lstm_size)
        width = cfg.lstm_size
    # Policy logits: Keras's default Dense init, as SSD passes none (specs.md §8.1);
    # only the value head has the small normalised columns.
    params["policy"] = glorot_dense(next(keys), width, num_actions)
    params["value"] = dense_params(next(keys), width, 1, cfg.head_init_scale)
    return params


def init_stacked(cfg: NetConfig, key: jax.Array, obs_space, num_actions: int,
                 shape: tuple[int, ...]) -> Params:
    """Independent parameter sets stacked on leading axes ``shape`` (e.g. ``(seeds, agents)``)."""
    count = int(np.prod(shape))
    keys = jax.random.split(key, count)
    stacked = jax.vmap(lambda k: init_params(cfg, k, obs_space, num_actions))(keys)
    return jax.tree.map(lambda x: x.reshape(tuple(shape) + x.shape[1:]), stacked)


def initial_carry(cfg: NetConfig, batch_shape: tuple[int, ...]) -> Carry:
    """Zero LSTM state ``(c, h)``, each ``batch_shape + (lstm_size,)``; ``()`` if feed-forward."""
    if not cfg.recurrent:
        return ()
    zeros = jnp.zeros(tuple(batch_shape) + (cfg.lstm_size,), jnp.float32)
    return (zeros, zeros)


# --- convolution ---------------------------------------------------------------------------


def _conv_direct_sum(x, kernel, bias):
    """relu(conv(x, kernel) + bias) as K·K·C broadcast multiply-adds; x [P, M, H, W, C]."""
    k = kernel.shape[1]
    ho, wo = x.shape[2] - k + 1, x.shape[3] - k + 1
    y = bias[:, None, None, None, :]
    for dy in range(k):
        for dx in range(k):
            for c in range(x.shape[-1]):
                patch = x[:, :, dy:dy + ho, dx:dx + wo, c, None].astype(jnp.float32)
                y = y + patch * kernel[:, None, None, None, dy, dx, c, :]
    return jax.nn.relu(y)


def _conv_xla_one(x, kernel, bias):
    y = jax.lax.conv_general_dilated(x.astype(jnp.float32), kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y + bias)


@jax.custom_vjp
def _conv_direct(x, kernel, bias):
    # The conditional is a fusion barrier: without it XLA:CPU fuses the flatten that follows
    # into this loop, whose output index then needs div/mod per element (≈5× slower). Its
    # other branch computes the same function with lax.conv, so the result never depends on
    # the predicate (it only sends non-finite kernels down the slow path).
    return jax.lax.cond(jnp.all(jnp.isfinite(kernel)), _conv_direct_sum,
                        jax.vmap(_conv_xla_one), x, kernel, bias)


def _conv_direct_fwd(x, kernel, bias):
    y = _conv_direct(x, kernel, bias)
    return y, (x, y, kernel.shape[1])


def _conv_direct_bwd(res, g):
    """Kernel and bias gradients of relu(conv(x) + b); x gets none (it is data).

    With z the pre-activation and gz = g·1[z > 0]: ∂b_f = Σ gz[..., f] and
    ∂k[dy, dx, c, f] = Σ_{m, r, w} x[m, r + dy, w + dx, c] gz[m, r, w, f]. For each dy the
    sum over (m, r) is one matmul of row windows, x rows [M·Ho, W·C]ᵀ @ gz rows [M·Ho, Wo·F],
    and the sum over w picks the diagonals w_in = w_out + dx. ∂b rides along as a column of
    ones beside the first window (its row of the product is Σ_{m, r} gz rows, summed over
    Wo), instead of a separate pass over gz.
    """
    x, y, k = res
    p, m, h, w, c = x.shape
    ho, wo, f = y.shape[2], y.shape[3], y.shape[4]
    gz = jnp.where(y > 0, g, 0.0)
    x_rows = x.astype(jnp.float32).reshape(p, m, h, w * c)
    g_rows = gz.reshape(p, m * ho, wo * f)
    select = np.zeros((k, w, wo), np.float32)  # select[dx, w_in, w_out] = 1[w_in = w_out + dx]
    for dx in range(k):
        select[dx, np.arange(wo) + dx, np.arange(wo)] = 1.0
    rows = []
    for dy in range(k):
        window = x_rows[:, :, dy:dy + ho].reshape(p, m * ho, w * c)
        if dy == 0:
            window = jnp.concatenate([window, jnp.ones((p, m * ho, 1), jnp.float32)], axis=-1)
        prod = jnp.einsum("pni,pno->pio", window, g_rows)
        if dy == 0:
            d_bias = prod[:, -1].reshape(p, wo, f).sum(axis=1)
            prod = prod[:, :-1]
        rows.append(jnp.einsum("pwcof,xwo->pxcf", prod.reshape(p, w, c, wo, f), select))
    d_kernel = jnp.stack(rows, axis=1)
    return None, d_kernel, d_bias


_conv_direct.defvjp(_conv_direct_fwd, _conv_direct_bwd)


def conv_relu(impl: str, x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """relu(valid conv(x) + bias) for stacked parameters: x [P, M, H, W, C] → [P, M, Ho, Wo, F]."""
    if impl == "direct":
        if jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        return _conv_direct(x, kernel, bias)
    if impl == "xla":
        return jax.vmap(_conv_xla_one)(x, kernel, bias)
    if impl == "xla_loop":
        return jnp.stack([_conv_xla_one(x[i], kernel[i], bias[i]) for i in range(x.shape[0])])
    raise ValueError(f"unknown conv_impl {impl!r}")


# --- forward pieces --------------------------------------------------------------------------


def dense(layer: Params, x: jax.Array) -> jax.Array:
    """x [P, ..., I] @ kernel [P, I, O] + bias [P, O] (every model's Dense layer)."""
    y = jnp.einsum("p...i,pio->p...o", x, layer["kernel"])
    return y + layer["bias"].reshape((y.shape[0],) + (1,) * (y.ndim - 2) + (-1,))


def conv_features(cfg: NetConfig, params: Params, obs: dict[str, jax.Array]) -> jax.Array:
    """The convolution's output, flattened: obs leaves [P, M, ...] → float32[P, M, D].

    ``rgb`` is divided by 255 (folded into the conv kernel, the same linear map); vector
    observations pass through flattened. Motives with their own towers on the shared
    convolution (the MOA) start from these features.
    """
    name = input_key(obs)
    x = obs[name]
    p, m = x.shape[:2]
    if name == "rgb":
        kernel = params["conv"]["kernel"] / 255.0
        x = conv_relu(cfg.resolved_conv_impl(), x, kernel, params["conv"]["bias"])
    elif "conv" in params:  # image-shaped planes (``conv_on_planes``)
        x = conv_relu(cfg.resolved_conv_impl(), x, params["conv"]["kernel"],
                      params["conv"]["bias"])
    return x.reshape(p, m, -1).astype(jnp.float32)


def mlp(params: Params, x: jax.Array, prefix: str = "mlp", layers: int | None = None,
        activation: str = "tanh"):
    """The MLP layers ``{prefix}_0, {prefix}_1, …`` on x [P, M, D] (tanh or relu)."""
    act = jax.nn.relu if activation == "relu" else jnp.tanh
    i = 0
    while f"{prefix}_{i}" in params and (layers is None or i < layers):
        x = act(dense(params[f"{prefix}_{i}"], x))
        i += 1
    return x


def encode(cfg: NetConfig, params: Params, obs: dict[str, jax.Array]) -> jax.Array:
    """Torso before the LSTM: obs leaves [P, M, ...] → features float32[P, M, D]."""
    return mlp(params, conv_features(cfg, params, obs), layers=len(cfg.hidden_sizes),
               activation=cfg.activation)


def lstm_input(params: Params, x: jax.Array) -> jax.Array:
    """The input half of the LSTM gates, x W_x + b, for all steps at once: [P, M, 4H]."""
    return dense({"kernel": params["lstm"]["input_kernel"], "bias": params["lstm"]["bias"]}, x)


def _sigmoid(x):
    # σ(x) = (1 + tanh(x/2))/2: one tanh, which XLA:CPU vectorises, instead of exp and a divide.
    return 0.5 + 0.5 * jnp.tanh(0.5 * x)


def lstm_cell(params: Params, carry: Carry, gates_x: jax.Array) -> tuple[Carry, jax.Array]:
    """One LSTM step from precomputed input gates [P, B, 4H]; gate order i, f, g, o.

    c' = σ(f)·c + σ(i)·tanh(g),   h' = σ(o)·tanh(c').
    """
    c, h = carry
    gates = gates_x + jnp.einsum("pbh,phg->pbg", h, params["lstm"]["recurrent_kernel"])
    c, h = lstm_update(gates, c)
    return (c, h), h


def lstm_update(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The LSTM's state update from its summed gates [..., 4H] (order i, f, g, o) and the
    previous cell state [..., H]: returns (c', h')."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * jnp.tanh(g)
    return c, _sigmoid(o) * jnp.tanh(c)


def _lstm_scan_fwd_impl(kernel, gates_x, carry, starts):
    """Forward recurrence over L steps, keeping what the backward pass needs."""

    def body(c_h, x):
        gx, start = x
        c, h = reset_carry(c_h, start)
        gates = gx + jnp.einsum("pbh,phg->pbg", h, kernel)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), jnp.tanh(g), _sigmoid(o)
        c_new = f * c + i * g
        tc = jnp.tanh(c_new)
        h_new = o * tc
        return (c_new, h_new), (h_new, (c, h, i, f, g, o, tc))

    return jax.lax.scan(body, carry, (gates_x, starts))


@jax.custom_vjp
def lstm_scan(kernel, gates_x, carry, starts):
    """LSTM outputs h_t [L, P, B, H] for input gates [L, P, B, 4H] from ``carry``, zeroing the
    state before steps where ``starts`` [L, P, B]; the recurrent ``kernel`` is [P, H, 4H].

    The same function as scanning :func:`lstm_cell`, with a hand-written gradient: the
    backward recurrence only propagates ∂h and ∂c, and the kernel's gradient
    Σ_t h_{t−1}ᵀ ∂gates_t is one matmul over all steps afterwards (XLA:CPU's own transpose
    of the scan accumulates it step by step, about twice as slow).
    """
    _, (hs, _) = _lstm_scan_fwd_impl(kernel, gates_x, carry, starts)
    return hs


def _lstm_scan_fwd(kernel, gates_x, carry, starts):
    _, (hs, saved) = _lstm_scan_fwd_impl(kernel, gates_x, carry, starts)
    return hs, (kernel, saved, starts)


def _lstm_scan_bwd(res, d_hs):
    kernel, saved, starts = res
    h_prev = saved[1]

    def body(d_next, x):
        dh_out, (c, _, i, f, g, o, tc), start = x
        dc_next, dh_next = d_next
        dh = dh_out + dh_next
        dc = dc_next + dh * o * (1.0 - tc * tc)
        d_gates = jnp.concatenate([dc * g * i * (1.0 - i), dc * c * f * (1.0 - f),
                                   dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
        dh_prev = jnp.einsum("pbg,phg->pbh", d_gates, kernel)
        dc_prev = dc * f
        keep = (~start)[..., None]  # a zeroed state passes no gradient back
        return (jnp.where(keep, dc_prev, 0.0), jnp.where(keep, dh_prev, 0.0)), d_gates

    zeros = jnp.zeros_like(d_hs[0])
    d_carry, d_gates = jax.lax.scan(body, (zeros, zeros), (d_hs, saved, starts), reverse=True)
    d_kernel = jnp.einsum("lpbh,lpbg->phg", h_prev, d_gates)
    return d_kernel, d_gates, d_carry, None


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


def heads(params: Params, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Policy logits [P, M, A] and value [P, M] from the core output [P, M, D]."""
    logits = dense(params["policy"], h)
    value = dense(params["value"], h)[..., 0]
    return logits, value


def reset_carry(carry: Carry, start: jax.Array) -> Carry:
    """Zero the carry where ``start`` (bool, broadcastable to the carry without its last axis)."""
    return jax.tree.map(lambda x: jnp.where(start[..., None], 0.0, x), carry)


def step(cfg: NetConfig, params: Params, obs: dict[str, jax.Array], carry: Carry,
         start: jax.Array) -> tuple[jax.Array, jax.Array, Carry]:
    """One time step for a batch: obs leaves [P, B, ...], carry [P, B, H], start bool [P, B].

    Returns logits [P, B, A], value [P, B] and the next carry.
    """
    x = encode(cfg, params, obs)
    if cfg.recurrent:
        carry = reset_carry(carry, jnp.broadcast_to(start, x.shape[:2]))
        carry, x = lstm_cell(params, carry, lstm_input(params, x))
    logits, value = heads(params, x)
    return logits, value, carry


def unroll(cfg: NetConfig, params: Params, obs: dict[str, jax.Array], carry: Carry,
           starts: jax.Array, return_features: bool = False):
    """Sequences: obs leaves [P, B, L, ...], initial carry [P, B, H], starts bool [P, B, L].

    The torso and the LSTM input projection run on all P·B·L steps at once; only the
    recurrence is a scan over L. Returns logits [P, B, L, A] and values [P, B, L] (and, with
    ``return_features``, the conv features [P, B·L, D]).
    """
    name = input_key(obs)
    p, b, length = obs[name].shape[:3]
    flat = {k: v.reshape((p, b * length) + v.shape[3:]) for k, v in obs.items()}
    features = conv_features(cfg, params, flat)
    x = mlp(params, features, layers=len(cfg.hidden_sizes), activation=cfg.activation)
    if cfg.recurrent:
        gates_x = lstm_input(params, x).reshape(p, b, length, -1)

        hs = lstm_scan(params["lstm"]["recurrent_kernel"], jnp.moveaxis(gates_x, 2, 0),
                       carry, jnp.moveaxis(jnp.broadcast_to(starts, (p, b, length)), 2, 0))
        x = jnp.moveaxis(hs, 0, 2).reshape(p, b * length, -1)
    logits, value = heads(params, x)
    out = logits.reshape(p, b, length, -1), value.reshape(p, b, length)
    return (*out, features) if return_features else out
