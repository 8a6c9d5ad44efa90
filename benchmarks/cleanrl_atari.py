"""The peer for Atari on a CPU: CleanRL's JAX DQN and envpool-XLA PPO, re-written here from their
published scripts and settings (CleanRL is not a library: its algorithms are single files).

``DQN`` follows ``cleanrl/dqn_atari_jax.py``: a Python host loop, one env step per iteration, epsilon-
greedy actions from a jitted Q-network call (skipped when exploring), a numpy replay ring that stores
each observation once (what SB3's ``ReplayBuffer(optimize_memory_usage=True)`` does: the successor of
row ``i`` is row ``i + 1``), and every ``train_frequency`` steps one top-level jitted ``update`` (Nature
CNN from ``flax.linen.Conv``, L2 TD loss, Adam); a hard target copy every ``target_update_period`` steps.
Differences, all in the peer's favour or neutral: the env is the same envpool task jaxrl trains on
(CleanRL's DQN uses gym's Atari wrappers: same DQN-paper preprocessing), and sampled rows stay numpy
(CleanRL converts them through torch tensors).

``PPO`` follows ``cleanrl/ppo_atari_envpool_xla_jax_scan.py``: envpool's XLA interface; each iteration a
``lax.scan`` rollout of a jitted policy call and env step, a jitted GAE, and a jitted ``update_ppo`` that
scans epochs and minibatches (flax Nature CNN shared by an actor and a critic head, clip 0.1, ent 0.01,
Adam 2.5e-4 annealed, grad-norm clip 0.5, advantage normalisation). envpool >= 1.0 returns
``(obs, reward, terminated, truncated, info)``; done is ``terminated | truncated``.

Both take the jaxrl envpool adapter's Atari options (``jaxrl.envs.envpool.ATARI_OPTIONS`` + training
options), so both frameworks step the same environment.
"""

from __future__ import annotations

import random

import envpool
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from jaxrl.envs.envpool import ATARI_OPTIONS, ATARI_TRAIN_OPTIONS


def make_envs(task: str, num_envs: int, seed: int, env_type: str = "gymnasium"):
    return envpool.make(
        task, env_type=env_type, num_envs=num_envs, seed=seed, **ATARI_OPTIONS, **ATARI_TRAIN_OPTIONS
    )


def _nature_trunk(x: jax.Array, init: dict) -> jax.Array:
    """CleanRL's torso: [N, 4, 84, 84] uint8 -> NHWC / 255 -> convs 32x8/4, 64x4/2, 64x3/1 -> dense 512."""
    x = jnp.transpose(x, (0, 2, 3, 1)) / 255.0
    for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
        x = nn.relu(nn.Conv(channels, (kernel, kernel), strides=(stride, stride), padding="VALID", **init)(x))
    return nn.relu(nn.Dense(512, **init)(x.reshape((x.shape[0], -1))))


class QNetwork(nn.Module):
    action_dim: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.action_dim)(_nature_trunk(x, {}))


class DQNTrainState(TrainState):
    target_params: flax.core.FrozenDict


class DQN:
    """CleanRL's DQN host loop, advanced ``n`` env steps at a time by :meth:`advance`."""

    def __init__(self, task, *, seed, buffer_size, batch_size, learning_rate, gamma, target_update_period,
                 epsilon_start, epsilon_end, exploration_steps, learning_starts, train_frequency):  # fmt: skip
        random.seed(seed)
        np.random.seed(seed)
        self.envs = make_envs(task, 1, seed)
        self.n_actions = int(self.envs.action_space.n)
        self.obs, _ = self.envs.reset()
        key = jax.random.key(seed)
        self.net = QNetwork(self.n_actions)
        params = self.net.init(key, self.obs)
        self.state = DQNTrainState.create(
            apply_fn=self.net.apply, params=params, target_params=params, tx=optax.adam(learning_rate)
        )
        self.q = jax.jit(self.net.apply)
        self.s = dict(
            batch_size=batch_size, gamma=gamma, target_update_period=target_update_period,
            epsilon_start=epsilon_start, epsilon_end=epsilon_end, exploration_steps=exploration_steps,
            learning_starts=learning_starts, train_frequency=train_frequency,
        )  # fmt: skip
        # replay ring, observations stored once (SB3 optimize_memory_usage)
        self.size, self.pos, self.full = buffer_size, 0, False
        self.observations = np.zeros((buffer_size,) + self.obs.shape[1:], np.uint8)
        self.actions = np.zeros(buffer_size, np.int32)
        self.rewards = np.zeros(buffer_size, np.float32)
        self.dones = np.zeros(buffer_size, np.float32)
        self.global_step = 0
        self.episode_returns: list[tuple[int, float]] = []

        net, g = self.net, gamma

        @jax.jit
        def update(state, obs, actions, next_obs, rewards, dones):
            q_next = jnp.max(net.apply(state.target_params, next_obs), axis=-1)
            target = rewards + (1 - dones) * g * q_next

            def mse(params):
                q = net.apply(params, obs)[jnp.arange(obs.shape[0]), actions]
                return jnp.mean((q - target) ** 2), q

            (loss, q), grads = jax.value_and_grad(mse, has_aux=True)(state.params)
            return loss, q, state.apply_gradients(grads=grads)

        self.update = update

    def _add(self, obs, next_obs, action, reward, done):
        self.observations[self.pos] = obs[0]
        self.observations[(self.pos + 1) % self.size] = next_obs[0]
        self.actions[self.pos], self.rewards[self.pos], self.dones[self.pos] = action[0], reward[0], done[0]
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def _sample(self, n):
        if self.full:
            idx = (np.random.randint(1, self.size, size=n) + self.pos) % self.size
        else:
            idx = np.random.randint(0, self.pos, size=n)
        nxt = (idx + 1) % self.size
        return (
            self.observations[idx],
            self.actions[idx],
            self.observations[nxt],
            self.rewards[idx],
            self.dones[idx],
        )

    def advance(self, n: int) -> None:
        s = self.s
        for _ in range(n):
            t = self.global_step
            slope = (s["epsilon_end"] - s["epsilon_start"]) / s["exploration_steps"]
            epsilon = max(slope * t + s["epsilon_start"], s["epsilon_end"])
            if random.random() < epsilon:
                actions = np.array([random.randrange(self.n_actions)])
            else:
                actions = jax.device_get(self.q(self.state.params, self.obs).argmax(axis=-1))
            next_obs, rewards, terminations, truncations, infos = self.envs.step(actions)
            # envpool's next-step reset: next_obs of an ending step is the true final observation
            self._add(self.obs, next_obs, actions, rewards, terminations)
            self.obs = next_obs
            if t > s["learning_starts"]:
                if t % s["train_frequency"] == 0:
                    obs, a, nobs, r, d = self._sample(s["batch_size"])
                    self.loss, _, self.state = self.update(self.state, obs, a, nobs, r, d)
                if t % s["target_update_period"] == 0:
                    self.state = self.state.replace(target_params=self.state.params)
            self.global_step += 1
        jax.block_until_ready(self.state)


class _Actor(nn.Module):
    action_dim: int

    @nn.compact
    def __call__(self, x):
        init = dict(kernel_init=nn.initializers.orthogonal(0.01), bias_init=nn.initializers.zeros)
        return nn.Dense(self.action_dim, **init)(x)


class _Critic(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), bias_init=nn.initializers.zeros)(x)


class _Trunk(nn.Module):
    @nn.compact
    def __call__(self, x):
        init = dict(kernel_init=nn.initializers.orthogonal(np.sqrt(2)), bias_init=nn.initializers.zeros)
        return _nature_trunk(x, init)


@flax.struct.dataclass
class Storage:
    obs: jax.Array
    actions: jax.Array
    logprobs: jax.Array
    dones: jax.Array
    values: jax.Array
    advantages: jax.Array
    returns: jax.Array
    rewards: jax.Array


class PPO:
    """CleanRL's envpool-XLA scan PPO, advanced one iteration (``num_envs * num_steps`` steps) at a time."""

    def __init__(self, task, *, seed, num_envs, num_steps, num_minibatches, num_epochs, learning_rate,
                 num_iterations, gamma, gae_lambda, clip_eps, ent_coef, vf_coef, max_grad_norm):  # fmt: skip
        self.envs = make_envs(task, num_envs, seed, env_type="gym")
        self.num_envs, self.num_steps = num_envs, num_steps
        handle, _recv, _send, step_env = self.envs.xla()
        key = jax.random.key(seed)
        key, k_net, k_actor, k_critic = jax.random.split(key, 4)
        network, actor, critic = _Trunk(), _Actor(int(self.envs.action_space.n)), _Critic()
        sample = np.zeros((1,) + self.envs.observation_space.shape, np.uint8)
        net_params = network.init(k_net, sample)
        hidden = network.apply(net_params, sample)

        def lr(count):
            frac = 1.0 - (count // (num_minibatches * num_epochs)) / num_iterations
            return learning_rate * frac

        self.state = TrainState.create(
            apply_fn=None,
            # CleanRL's AgentParams dataclass, as a dict (flax 0.12's TrainState.create needs a mapping)
            params={
                "network_params": net_params,
                "actor_params": actor.init(k_actor, hidden),
                "critic_params": critic.init(k_critic, hidden),
            },
            tx=optax.chain(
                optax.clip_by_global_norm(max_grad_norm),
                optax.inject_hyperparams(optax.adam)(learning_rate=lr, eps=1e-5),
            ),
        )

        @jax.jit
        def get_action_and_value(state, obs, key):
            hidden = network.apply(state.params["network_params"], obs)
            logits = actor.apply(state.params["actor_params"], hidden)
            key, sub = jax.random.split(key)
            u = jax.random.uniform(sub, logits.shape)
            action = jnp.argmax(logits - jnp.log(-jnp.log(u)), axis=1)
            logprob = jax.nn.log_softmax(logits)[jnp.arange(action.shape[0]), action]
            value = critic.apply(state.params["critic_params"], hidden)
            return action, logprob, value.squeeze(1), key

        def evaluate_actions(params, x, action):
            hidden = network.apply(params["network_params"], x)
            logits = actor.apply(params["actor_params"], hidden)
            logprob = jax.nn.log_softmax(logits)[jnp.arange(action.shape[0]), action]
            logits = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
            logits = logits.clip(min=jnp.finfo(logits.dtype).min)
            entropy = -(logits * jax.nn.softmax(logits)).sum(-1)
            return logprob, entropy, critic.apply(params["critic_params"], hidden).squeeze()

        def step_once(carry, _):
            state, obs, done, key, handle = carry
            action, logprob, value, key = get_action_and_value(state, obs, key)
            handle, (next_obs, reward, terminated, truncated, _info) = step_env(handle, action)
            next_done = jnp.logical_or(terminated, truncated)
            zeros = jnp.zeros_like(reward)
            row = Storage(obs, action, logprob, done, value, zeros, zeros, reward)
            return (state, next_obs, next_done, key, handle), row

        def rollout(state, obs, done, key, handle):
            return jax.lax.scan(step_once, (state, obs, done, key, handle), (), num_steps)

        @jax.jit
        def compute_gae(state, next_obs, next_done, storage):
            next_value = critic.apply(
                state.params["critic_params"], network.apply(state.params["network_params"], next_obs)
            ).squeeze()
            dones = jnp.concatenate([storage.dones, next_done[None, :]], axis=0)
            values = jnp.concatenate([storage.values, next_value[None, :]], axis=0)

            def once(adv, inp):
                nextdone, nextvalue, value, reward = inp
                nonterminal = 1.0 - nextdone
                delta = reward + gamma * nextvalue * nonterminal - value
                adv = delta + gamma * gae_lambda * nonterminal * adv
                return adv, adv

            _, adv = jax.lax.scan(
                once, jnp.zeros(num_envs), (dones[1:], values[1:], values[:-1], storage.rewards), reverse=True
            )
            return storage.replace(advantages=adv, returns=adv + storage.values)

        def ppo_loss(params, x, a, logp, adv, ret):
            newlogprob, entropy, newvalue = evaluate_actions(params, x, a)
            logratio = newlogprob - logp
            ratio = jnp.exp(logratio)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps)).mean()
            v_loss = 0.5 * ((newvalue - ret) ** 2).mean()
            return pg - ent_coef * entropy.mean() + vf_coef * v_loss

        grad_fn = jax.value_and_grad(ppo_loss)

        @jax.jit
        def update_ppo(state, storage, key):
            def epoch(carry, _):
                state, key = carry
                key, sub = jax.random.split(key)

                def shuffle(x):
                    x = jax.random.permutation(sub, x.reshape((-1,) + x.shape[2:]))
                    return x.reshape((num_minibatches, -1) + x.shape[1:])

                def minibatch(state, mb):
                    loss, grads = grad_fn(
                        state.params, mb.obs, mb.actions, mb.logprobs, mb.advantages, mb.returns
                    )
                    return state.apply_gradients(grads=grads), loss

                state, loss = jax.lax.scan(minibatch, state, jax.tree.map(shuffle, storage))
                return (state, key), loss

            (state, key), loss = jax.lax.scan(epoch, (state, key), (), num_epochs)
            return state, loss, key

        self._rollout, self._gae, self._update = rollout, compute_gae, update_ppo
        obs, _ = self.envs.reset()
        self.carry = (jnp.asarray(obs), jnp.zeros(num_envs, jnp.bool_), key, handle)
        self.global_step = 0

    def advance(self, n: int) -> None:
        """Run iterations until at least ``n`` more env steps are done."""
        target = self.global_step + n
        while self.global_step < target:
            obs, done, key, handle = self.carry
            (self.state, obs, done, key, handle), storage = self._rollout(self.state, obs, done, key, handle)
            storage = self._gae(self.state, obs, done, storage)
            self.state, self.loss, key = self._update(self.state, storage, key)
            self.carry = (obs, done, key, handle)
            self.global_step += self.num_envs * self.num_steps
        jax.block_until_ready(self.state)
