"""Pure, single-stream RL losses (rlax-style names; batch with ``jax.vmap``)."""

from jaxrl.losses.grpo import GRPODiagnostics, group_advantages, grpo_loss, k3_kl
from jaxrl.losses.policy import (
    categorical_log_prob,
    clipped_surrogate_loss,
    clipped_value_loss,
    entropy,
    gaussian_entropy,
    gaussian_log_prob,
    policy_gradient_loss,
    reinforce_loss,
)
from jaxrl.losses.preference import preference_accuracy, preference_loss
from jaxrl.losses.returns import discounted_returns, gae, td_targets, truncated_gae
from jaxrl.losses.value import double_q_learning, huber_loss, l2_loss, q_learning

__all__ = [
    "categorical_log_prob",
    "clipped_surrogate_loss",
    "clipped_value_loss",
    "discounted_returns",
    "double_q_learning",
    "entropy",
    "gae",
    "gaussian_entropy",
    "gaussian_log_prob",
    "group_advantages",
    "grpo_loss",
    "GRPODiagnostics",
    "k3_kl",
    "huber_loss",
    "l2_loss",
    "policy_gradient_loss",
    "preference_accuracy",
    "preference_loss",
    "q_learning",
    "reinforce_loss",
    "td_targets",
    "truncated_gae",
]
