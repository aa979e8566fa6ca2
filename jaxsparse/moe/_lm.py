"""A tiny Flax NNX decoder LM with sparse-MoE feed-forward blocks (stacked `[E, d, f]` experts), and its tools.

Layers: token + learned position embeddings, then per block RMSNorm -> causal multi-head attention -> residual,
RMSNorm -> sparse MoE (top-k softmax router, dropless) -> residual; a final RMSNorm and an untied output head.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ._layer import moe_forward
from ._observer import moe_forward_with_stats
from ._params import MoEParams, check_moe_params, init_moe_params
from ._routing import route

__all__ = [
    "MoEBlock",
    "MoELM",
    "calibrate_lm",
    "evaluate_lm",
    "get_moe_params",
    "lm_moe_inputs",
    "train_moe_lm",
    "with_moe_params",
]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class MoEBlock(nnx.Module):
    """Sparse-MoE feed-forward: the layer's `MoEParams` arrays held as NNX Params (E may shrink after pruning)."""

    def __init__(self, d_model: int, d_ff: int, num_experts: int, *, top_k: int, renormalize: bool, rngs: nnx.Rngs):
        p = init_moe_params(rngs.params(), num_experts=num_experts, d_model=d_model, d_ff=d_ff)
        self.router, self.w_gate, self.w_up, self.w_down = (
            nnx.Param(a) for a in (p.router, p.w_gate, p.w_up, p.w_down)
        )
        self.top_k, self.renormalize = top_k, renormalize

    @property
    def params(self) -> MoEParams:
        return MoEParams(self.router[...], self.w_gate[...], self.w_up[...], self.w_down[...])

    def set_params(self, params: MoEParams) -> None:
        params = check_moe_params(params)
        if params.d_model != self.w_gate.shape[1]:
            raise ValueError(f"params.d_model={params.d_model} does not match the block's {self.w_gate.shape[1]}")
        if params.num_experts < self.top_k:
            raise ValueError(f"a layer needs at least top_k={self.top_k} experts, got E={params.num_experts}")
        self.router, self.w_gate = nnx.Param(params.router), nnx.Param(params.w_gate)
        self.w_up, self.w_down = nnx.Param(params.w_up), nnx.Param(params.w_down)

    def __call__(self, x, token_mask=None, *, observe: bool = False, dense_outputs: bool = False):
        """x `[T, d]` -> (y `[T, d]`, load-balancing loss, ExpertStats or None)."""
        params = self.params
        logits = x @ params.router
        idx, _, probs = route(logits, top_k=self.top_k, renormalize=self.renormalize)
        e = params.num_experts
        # Switch-style balance loss: E · Σ_e (fraction of routed slots to e) · (mean probability of e).
        frac = jnp.zeros((e,), jnp.float32).at[idx.reshape(-1)].add(1.0) / idx.size
        aux = e * jnp.sum(frac * jnp.mean(probs, axis=0))
        if observe:
            y, stats = moe_forward_with_stats(
                params,
                x,
                top_k=self.top_k,
                renormalize=self.renormalize,
                token_mask=token_mask,
                dense_outputs=dense_outputs,
            )
            return y, aux, stats
        return moe_forward(params, x, top_k=self.top_k, renormalize=self.renormalize), aux, None


class _Attention(nnx.Module):
    def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs):
        self.num_heads = num_heads
        self.qkv = nnx.Linear(d_model, 3 * d_model, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, use_bias=False, rngs=rngs)

    def __call__(self, x):  # [B, L, d]
        b, length, d = x.shape
        h = self.num_heads
        q, k, v = jnp.split(self.qkv(x).reshape(b, length, 3, h, d // h), 3, axis=2)
        q, k, v = (a[:, :, 0] for a in (q, k, v))
        scores = jnp.einsum("blhc,bmhc->bhlm", q, k) / jnp.sqrt(d // h).astype(x.dtype)
        causal = jnp.tril(jnp.ones((length, length), bool))
        scores = jnp.where(causal, scores, -1e30)
        att = jax.nn.softmax(scores, axis=-1)
        return self.out(jnp.einsum("bhlm,bmhc->blhc", att, v).reshape(b, length, d))


class _DecoderBlock(nnx.Module):
    def __init__(self, d_model, num_heads, d_ff, num_experts, *, top_k, renormalize, rngs):
        self.norm_att = nnx.RMSNorm(d_model, rngs=rngs)
        self.attention = _Attention(d_model, num_heads, rngs=rngs)
        self.norm_moe = nnx.RMSNorm(d_model, rngs=rngs)
        self.moe = MoEBlock(d_model, d_ff, num_experts, top_k=top_k, renormalize=renormalize, rngs=rngs)


class MoELM(nnx.Module):
    """Decoder-only LM with a sparse-MoE feed-forward in every block.

    Args:
        vocab_size, d_model, num_heads, d_ff (per expert), num_experts, num_layers, max_len: sizes.
        top_k: experts per token. renormalize: top-k gate renormalisation (Mixtral/Qwen3) or raw softmax (OLMoE).
        rngs: NNX rngs (`params` stream).
    """

    def __init__(
        self,
        *,
        vocab_size: int = 256,
        d_model: int = 64,
        num_heads: int = 4,
        d_ff: int = 64,
        num_experts: int = 16,
        num_layers: int = 4,
        top_k: int = 2,
        renormalize: bool = True,
        max_len: int = 128,
        rngs: nnx.Rngs,
    ):
        sizes = dict(
            vocab_size=vocab_size, d_model=d_model, num_heads=num_heads, d_ff=d_ff, num_experts=num_experts,
            num_layers=num_layers, top_k=top_k, max_len=max_len,
        )  # fmt: skip
        for name, value in sizes.items():
            _positive_int(value, name)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        if top_k > num_experts:
            raise ValueError(f"top_k={top_k} exceeds num_experts={num_experts}")
        if not isinstance(renormalize, bool):
            raise TypeError(f"renormalize must be a bool, got {renormalize!r}")
        self.top_k, self.renormalize, self.max_len, self.vocab_size = top_k, renormalize, max_len, vocab_size
        self.embed = nnx.Embed(vocab_size, d_model, rngs=rngs)
        self.pos = nnx.Embed(max_len, d_model, rngs=rngs)
        self.blocks = nnx.List(
            [
                _DecoderBlock(d_model, num_heads, d_ff, num_experts, top_k=top_k, renormalize=renormalize, rngs=rngs)
                for _ in range(num_layers)
            ]
        )
        self.norm = nnx.RMSNorm(d_model, rngs=rngs)
        self.head = nnx.Linear(d_model, vocab_size, use_bias=False, rngs=rngs)

    def __call__(self, tokens, token_mask=None, *, observe: bool = False, dense_outputs: bool = False, capture=False):
        """tokens `[B, L]` int -> (logits `[B, L, V]`, aux dict).

        aux: "balance_loss" (mean over layers), and with `observe` "stats" (one `ExpertStats` per MoE layer over
        the tokens where `token_mask` `[B, L]` is True); with `capture` "moe_inputs" (`[B*L, d]` per layer).
        """
        b, length = tokens.shape
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        flat_mask = None if token_mask is None else token_mask.reshape(-1)
        h = self.embed(tokens) + self.pos(jnp.arange(length))[None]
        balance, stats, inputs = [], [], []
        for block in self.blocks:
            h = h + block.attention(block.norm_att(h))
            x = block.norm_moe(h).reshape(b * length, -1)
            if capture:
                inputs.append(x)
            y, aux, s = block.moe(x, flat_mask, observe=observe, dense_outputs=dense_outputs)
            balance.append(aux)
            stats.append(s)
            h = h + y.reshape(b, length, -1)
        out = {"balance_loss": jnp.mean(jnp.stack(balance))}
        if observe:
            out["stats"] = stats
        if capture:
            out["moe_inputs"] = inputs
        return self.head(self.norm(h)), out


def get_moe_params(model: MoELM) -> list[MoEParams]:
    """The model's MoE layers as `MoEParams`, first layer first."""
    if not isinstance(model, MoELM):
        raise TypeError(f"model must be a MoELM, got {type(model).__name__}")
    return [block.moe.params for block in model.blocks]


def with_moe_params(model: MoELM, params_list) -> MoELM:
    """A copy of `model` whose MoE layers are `params_list` (pruned or merged; E may differ per layer)."""
    params_list = list(params_list)
    if len(params_list) != len(model.blocks):
        raise ValueError(f"params_list must hold {len(model.blocks)} layers, got {len(params_list)}")
    new = nnx.clone(model)
    for block, params in zip(new.blocks, params_list, strict=True):
        block.moe.set_params(params)
    return new


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _eval_batch(graphdef, state, tokens):
    logits, _ = nnx.merge(graphdef, state)(tokens[:, :-1])
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    target = tokens[:, 1:]
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return jnp.sum(nll), jnp.sum(jnp.argmax(logits, -1) == target)


def evaluate_lm(model: MoELM, windows, *, batch_size: int = 64) -> dict:
    """Next-token loss (nats), perplexity and accuracy over `windows` `[N, L+1]` (every position predicted)."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"windows must be [N, L+1] with L >= 1, got shape {windows.shape}")
    graphdef, state = nnx.split(model)
    nll = correct = 0.0
    for start in range(0, len(windows), batch_size):
        s, c = _eval_batch(graphdef, state, jnp.asarray(windows[start : start + batch_size]))
        nll, correct = nll + float(s), correct + float(c)
    count = windows.shape[0] * (windows.shape[1] - 1)
    loss = nll / count
    return {"loss": loss, "perplexity": float(np.exp(loss)), "accuracy": correct / count, "tokens": count}


@functools.partial(jax.jit, static_argnames=("graphdef", "dense_outputs"))
def _observe_batch(graphdef, state, tokens, mask, dense_outputs):
    _, aux = nnx.merge(graphdef, state)(tokens, mask, observe=True, dense_outputs=dense_outputs)
    return aux["stats"]


def calibrate_lm(model: MoELM, token_batches, *, token_masks=None, dense_outputs: bool = False) -> list:
    """Observer pass: one `ExpertStats` per MoE layer, accumulated over batches on the host in float64.

    Args:
        model: the LM.
        token_batches: iterable of `[B, L]` int token arrays (the same shape keeps one compile).
        token_masks: matching iterable of `[B, L]` bool (False = padding, not counted), or None.
        dense_outputs: also collect `dense_output_sum` (all experts on all tokens; HC-SMoE's signature).
    """
    graphdef, state = nnx.split(model)
    total = None
    batches = list(token_batches)
    masks = [None] * len(batches) if token_masks is None else list(token_masks)
    if not batches or len(masks) != len(batches):
        raise ValueError("token_batches must be non-empty and token_masks (if given) of the same length")
    for tokens, mask in zip(batches, masks, strict=True):
        tokens = jnp.asarray(tokens)
        mask = jnp.ones(tokens.shape, bool) if mask is None else jnp.asarray(mask, bool)
        if mask.shape != tokens.shape:
            raise ValueError(f"a token mask has shape {mask.shape}, its batch {tokens.shape}")
        stats = [s.to_host() for s in _observe_batch(graphdef, state, tokens, mask.reshape(-1), dense_outputs)]
        total = stats if total is None else [a.combine(b) for a, b in zip(total, stats, strict=True)]
    return total


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _capture(graphdef, state, tokens):
    return nnx.merge(graphdef, state)(tokens, capture=True)[1]["moe_inputs"]


def lm_moe_inputs(model: MoELM, tokens) -> list:
    """The `[B*L, d]` hidden states entering each MoE layer for `tokens` `[B, L]` (for layer-level analyses)."""
    graphdef, state = nnx.split(model)
    return list(_capture(graphdef, state, jnp.asarray(tokens)))


@functools.partial(jax.jit, static_argnames=("graphdef", "tx", "balance_weight"))
def _train_chunk(graphdef, state, opt_state, windows, tx, balance_weight):
    def step(carry, batch):
        state, opt_state = carry

        def loss_fn(s):
            logits, aux = nnx.merge(graphdef, s)(batch[:, :-1])
            logp = jax.nn.log_softmax(logits.astype(jnp.float32))
            nll = -jnp.mean(jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1))
            return nll + balance_weight * aux["balance_loss"], nll

        (_, nll), grads = jax.value_and_grad(loss_fn, has_aux=True)(state)
        updates, opt_state = tx.update(grads, opt_state, state)
        return (optax.apply_updates(state, updates), opt_state), nll

    (state, opt_state), losses = jax.lax.scan(step, (state, opt_state), windows)
    return state, opt_state, losses


def train_moe_lm(
    model: MoELM,
    sample_batch,
    *,
    steps: int,
    learning_rate: float = 3e-3,
    balance_weight: float = 0.01,
    chunk: int = 25,
    progress: bool = False,
) -> list[float]:
    """AdamW (cosine schedule) on next-token loss + `balance_weight` × load-balancing loss; updates `model` in place.

    Args:
        model: the LM to train.
        sample_batch: callable `step -> [B, L+1]` int windows.
        steps: optimisation steps; `chunk` steps run per compiled `lax.scan`.
        learning_rate, balance_weight: optimiser settings.
        progress: show a tqdm bar.

    Returns:
        The training loss (next-token NLL) of every step.
    """
    steps = _positive_int(steps, "steps")
    chunk = _positive_int(chunk, "chunk")
    tx = optax.adamw(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.1), weight_decay=0.01)
    graphdef, state = nnx.split(model)
    opt_state = tx.init(state)
    losses = []
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="train MoE LM", disable=not progress)
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        windows = jnp.asarray(np.stack([np.asarray(sample_batch(done + i)) for i in range(n)]))
        state, opt_state, chunk_losses = _train_chunk(graphdef, state, opt_state, windows, tx, balance_weight)
        losses += [float(v) for v in np.asarray(chunk_losses)]
        done += n
        bar.update(n)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    nnx.update(model, state)
    return losses
