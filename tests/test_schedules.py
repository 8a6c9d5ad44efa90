"""jaxrl.schedules: hand-computed values, traced arguments, jit/vmap agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import schedules


class TestLinear:
    @pytest.mark.parametrize(
        "step, expected",
        [
            (0, 1.0),
            (50, 0.525),  # 1 + 0.5 * (0.05 - 1) = 0.525
            (100, 0.05),
            (250, 0.05),  # held at the end value
            (-5, 1.0),  # clipped at the start value
        ],
    )
    def test_hand_computed(self, step, expected):
        np.testing.assert_allclose(schedules.linear(1.0, 0.05, 100, step), expected, rtol=1e-6)

    def test_increasing_schedule(self):
        # 0 -> 2 over 4 steps: step 1 is 0.5, step 3 is 1.5
        np.testing.assert_allclose(
            schedules.linear(0.0, 2.0, 4, jnp.arange(6)), [0, 0.5, 1, 1.5, 2, 2], rtol=1e-6
        )

    def test_zero_duration_gives_end(self):
        assert float(schedules.linear(1.0, 0.1, 0, 0)) == pytest.approx(0.1)

    def test_traced_arguments_jit_and_vmap_agree(self):
        # A swept exploration_fraction is a traced duration: 0.5 * 1000 = 500 steps, 0.25 * 1000 = 250.
        fracs = jnp.array([0.5, 0.25])
        f = lambda frac, step: schedules.linear(1.0, 0.0, frac * 1000, step)
        eager = np.array([f(0.5, 100), f(0.25, 100)])
        vmapped = jax.jit(jax.vmap(f, in_axes=(0, None)))(fracs, 100)
        np.testing.assert_allclose(vmapped, eager, rtol=1e-6)
        np.testing.assert_allclose(vmapped, [0.8, 0.6], rtol=1e-6)  # 1 - 100/500, 1 - 100/250


class TestCrossed:
    @pytest.mark.parametrize(
        "before, after, period, expected",
        [
            (0, 10, 500, False),
            (490, 500, 500, True),  # reaches a multiple exactly
            (495, 505, 500, True),  # jumps over it
            (500, 510, 500, False),  # the multiple was counted last time
            (0, 1000, 300, True),
        ],
    )
    def test_cases(self, before, after, period, expected):
        assert bool(schedules.crossed(before, after, period)) is expected

    def test_counts_events_once_per_period(self):
        # stepping by 10 for 3000 steps with period 500 fires exactly 6 times
        steps = jnp.arange(0, 3000, 10)
        fired = jax.vmap(lambda s: schedules.crossed(s, s + 10, 500))(steps)
        assert int(fired.sum()) == 6
