"""Coins (specs §4): two players, coins of two colours, and a penalty for taking the other's.

``coins`` (§4.2, decisions D-16, D-17): a bounded 5×5 grid without walls; player 0 owns the
red coins, player 1 the blue ones. Each step runs

1. moves (absolute: 0 up, 1 down, 2 left, 3 right, 4 stay) by the movement core of §1.4
   (:func:`prosocial.envs.grid.resolve_moves`): an off-grid move stays, two players never
   share a cell, a contested cell goes to the player of higher random priority, a head-on
   swap is cancelled;
2. collection: a player standing on a coin takes it, +1 to the taker and, if the coin has
   the other player's colour, −2 to the other player; the coin is removed;
3. spawning: every cell with no player and no coin gets a coin with probability
   ``spawn_prob`` (0.005), red or blue with probability ½ each;
4. observation: float32 ``[5, 5, 4]`` planes in the grid's own frame with agent-relative
   channels (self, other player, own-colour coins, other-colour coins), the same view for
   both players by construction (D-18).

Episodes last 500 steps and end by time limit only. Events per player and step:
``own_coins_collected``, ``other_coins_collected`` (defections: coins of the other's colour)
and ``own_coins_lost`` (own-colour coins the other player took), so the reward is
``own + other − 2·lost``. The own-coin share of an episode (how cooperatively the coins were
shared) is Σ own_coins_collected / Σ (own_coins_collected + other_coins_collected), summed
over the players and steps of the episode (undefined when nothing was collected).

Variants (§4.3), subclasses that change only the class attributes below:

- ``coins-torus``: the grid wraps; players move independently and may share a cell; two
  players on one coin both take it (each +1, and the owner's −2 once per other-colour taker).
- ``coin-game-lola``: 3×3 torus, sharing; exactly one coin, which after it is taken is
  replaced at once on a uniformly random cell not under a player, in the other colour; 4
  moves in LOLA's order (right, left, down, up); absolute-colour planes (red player, blue
  player, red coin, blue coin). Two players landing on the coin both take it, as in
  ``coins-torus`` (LOLA's code gives it to the red player alone; we keep the game symmetric).
- ``coin-game-2coin``: 3×3 torus, sharing; one red and one blue coin always present, each
  replaced on a uniformly random cell (any cell) once taken; 5 actions in JaxMARL's order
  (right, left, up, down, stay; up is row − 1 as everywhere here).

``symmetrise_obs=True`` (§4.4) rebuilds the innovator's (agent 0's) absolute-colour
observation with the player planes and the coin planes swapped, so it reads as if it were
the blue player; with agent-relative planes it changes nothing (D-18).

Randomness per step: the step key splits into a movement key (one random bit: which player
has priority) and a dynamics key from which *all* coin draws come (cells and colours).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs import grid as G
from prosocial.envs.core import Env
from prosocial.envs.spaces import Box, Dict, Discrete

SPAWN, ONE_ALTERNATING, TWO_COINS = "spawn", "one_alternating", "two_coins"
COIN_RULES = (SPAWN, ONE_ALTERNATING, TWO_COINS)

UP, DOWN, LEFT, RIGHT, STAY = (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)
COINS_MOVES = {"up": UP, "down": DOWN, "left": LEFT, "right": RIGHT, "stay": STAY}
LOLA_MOVES = {"right": RIGHT, "left": LEFT, "down": DOWN, "up": UP}
JAXMARL_MOVES = {"right": RIGHT, "left": LEFT, "up": UP, "down": DOWN, "stay": STAY}

# Characters of :meth:`Coins.state_from_grid`: a cell's coins (players are given apart).
EMPTY_CHARS, RED_CHAR, BLUE_CHAR, BOTH_CHAR = " .", "R", "B", "*"
# Render colours: empty, red coin, blue coin, both coins; red, blue player, both players.
RENDER_COLOURS = np.array([(0, 0, 0), (160, 0, 0), (0, 0, 160), (160, 0, 160),
                           (255, 110, 110), (110, 110, 255), (255, 255, 255)], np.uint8)


@struct.dataclass
class CoinsState:
    """State of one Coins game."""

    pos: jax.Array  # int32[2, 2] (row, col) of player 0 (red) and player 1 (blue)
    coins: jax.Array  # bool[2, H, W]: coins[c] marks the coins of player c's colour
    t: jax.Array  # int32 steps taken in this episode
    # The game's id, static: a state of one variant is then rejected by another
    # (Env.check_state compares pytree structures, which include static fields).
    game: str = struct.field(pytree_node=False, default="coins")



class Coins(Env):
    """The Coins game of [ECCLES] §3.1.1 (specs §4.2); see the module docstring.

    Args:
        num_agents: must be 2 (accepted so that code building any env by id can pass it).
        max_steps: episode length (500).
        grid_size: side of the square grid (5; the LOLA and 2-coin variants 3).
        spawn_prob: per-step coin probability of each free cell (0.005; ``coins`` and
            ``coins-torus`` only; 1.0 fills every free cell, handy in tests).
        symmetrise_obs: swap the colours of the innovator's absolute-colour observation (§4.4).
    """

    env_id = "coins"
    torus = False
    share_cells = False
    coin_rule = SPAWN
    moves: dict[str, tuple[int, int]] = COINS_MOVES
    absolute_colours = False

    def __init__(self, num_agents: int = 2, max_steps: int = 500, grid_size: int = 5,
                 spawn_prob: float = 0.005, symmetrise_obs: bool = False):
        if isinstance(num_agents, bool) or num_agents != 2:
            raise ValueError(f"{self.env_id}: num_agents must be 2 (a two-player game), "
                             f"got {num_agents!r}")
        if (isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer)
                or max_steps < 1):
            raise ValueError(f"{self.env_id}: max_steps must be a positive integer, "
                             f"got {max_steps!r}")
        if (isinstance(grid_size, bool) or not isinstance(grid_size, int | np.integer)
                or grid_size < 2):
            raise ValueError(f"{self.env_id}: grid_size must be an integer ≥ 2, "
                             f"got {grid_size!r}")
        if not 0.0 <= float(spawn_prob) <= 1.0:  # NaN fails too
            raise ValueError(f"{self.env_id}: spawn_prob must lie in [0, 1], got {spawn_prob!r}")
        if self.coin_rule != SPAWN and spawn_prob != 0.005:
            raise ValueError(f"{self.env_id}: spawn_prob applies only to the games whose coins "
                             f"spawn at random (coins, coins-torus); this one keeps a fixed "
                             f"number of coins")
        self.num_agents = 2
        self.max_steps = int(max_steps)
        self.grid_size = int(grid_size)
        self.spawn_prob = float(spawn_prob)
        self.symmetrise_obs = bool(symmetrise_obs)
        # Spawning compares 31 random bits with this threshold (p resolved to 2^-31); the
        # 32nd bit is the coin's colour, so the two draws are independent.
        self.spawn_threshold = np.uint32(round(self.spawn_prob * 2**31))
        self.action_names = tuple(self.moves)
        self.move_table = np.array(list(self.moves.values()), np.int32)
        self.stay_action = self.action_names.index("stay") if "stay" in self.moves else None
        size = self.grid_size
        self.action_space = Discrete(len(self.moves))
        self.observation_space = Dict({"obs": Box(0.0, 1.0, (size, size, 4), "float32")})

    # ----------------------------------------------------------------- helpers
    @property
    def num_cells(self) -> int:
        return self.grid_size * self.grid_size

    def player_cells(self, pos: jax.Array) -> jax.Array:
        """bool[2, H·W]: each player's cell, one-hot over the row-major cells."""
        idx = pos[:, 0] * self.grid_size + pos[:, 1]
        return jnp.arange(self.num_cells)[None, :] == idx[:, None]

    def move_targets(self, pos: jax.Array, actions: jax.Array) -> jax.Array:
        """Requested cells: one step in the action's direction, wrapped on a torus."""
        target = pos + jnp.asarray(self.move_table)[actions]
        return target % self.grid_size if self.torus else target

    def _pick_cell(self, key: jax.Array, allowed: jax.Array) -> jax.Array:
        """bool[H·W]: one cell drawn uniformly among the ``allowed`` ones (none if none)."""
        count = jnp.sum(allowed, dtype=jnp.int32)
        k = jax.random.randint(key, (), 0, jnp.maximum(count, 1))
        rank = jnp.cumsum(allowed, dtype=jnp.int32) - 1
        return allowed & (rank == k)

    # ----------------------------------------------------------------- contract
    def reset_state(self, key: jax.Array) -> CoinsState:
        """Players on two distinct uniformly random cells; no coins (``coins``), one coin of a
        random colour off the players (LOLA), or both coins on random cells (2-coin)."""
        key_pos, key_coin = jax.random.split(key)
        n = self.num_cells
        first, second = jax.random.randint(key_pos, (2,), 0, jnp.array([n, n - 1]))
        second = second + (second >= first)  # uniform over the cells other than `first`
        idx = jnp.stack([first, second]).astype(jnp.int32)
        pos = jnp.stack([idx // self.grid_size, idx % self.grid_size], axis=1)
        coins = jnp.zeros((2, n), jnp.bool_)
        if self.coin_rule == ONE_ALTERNATING:
            key_cell, key_colour = jax.random.split(key_coin)
            cell = self._pick_cell(key_cell, ~jnp.any(self.player_cells(pos), axis=0))
            blue = jax.random.bernoulli(key_colour)
            coins = jnp.stack([cell & ~blue, cell & blue])
        elif self.coin_rule == TWO_COINS:
            cells = jax.random.randint(key_coin, (2,), 0, n)
            coins = jnp.arange(n)[None, :] == cells[:, None]
        return CoinsState(pos=pos, coins=coins.reshape(2, self.grid_size, self.grid_size),
                          t=jnp.zeros((), jnp.int32), game=self.env_id)

    def step_state(self, key: jax.Array, state: CoinsState, actions: jax.Array):
        self.check_state(state)
        actions = self.check_actions(actions)
        key_move, key_dyn = jax.random.split(key)
        pos = self.move(key_move, state.pos, actions)

        at = self.player_cells(pos)  # [player, cell]
        coins = state.coins.reshape(2, self.num_cells)
        taken = jnp.any(at[:, None, :] & coins[None, :, :], axis=-1)  # [player, colour]
        own = jnp.diagonal(taken)
        other = jnp.diagonal(taken[:, ::-1])  # player i took a coin of colour 1 − i
        lost = other[::-1]
        reward = (own.astype(jnp.float32) + other.astype(jnp.float32)
                  - 2.0 * lost.astype(jnp.float32))
        occupied = jnp.any(at, axis=0)
        coins = self.replenish(key_dyn, coins & ~occupied[None, :], coins, occupied)

        t = state.t + 1
        next_state = CoinsState(pos=pos, coins=coins.reshape(state.coins.shape), t=t,
                                game=self.env_id)
        events = {"own_coins_collected": own.astype(jnp.int32),
                  "other_coins_collected": other.astype(jnp.int32),
                  "own_coins_lost": lost.astype(jnp.int32)}
        terminated = jnp.zeros(2, jnp.bool_)  # the game ends by time limit only
        return next_state, reward, terminated, t >= self.max_steps, {"events": events,
                                                                      "signals": {}}

    def move(self, key: jax.Array, pos: jax.Array, actions: jax.Array) -> jax.Array:
        """Positions after the players' simultaneous moves (§1.4, or free moves if sharing)."""
        target = self.move_targets(pos, actions)
        if self.share_cells:
            inside = G.in_bounds(target, (self.grid_size, self.grid_size))
            return jnp.where(inside[:, None], target, pos)
        first = jax.random.bits(key, (), jnp.uint32) & 1  # which player has priority
        priority = jnp.stack([first, 1 - first]).astype(jnp.int32)
        walkable = jnp.ones((self.grid_size, self.grid_size), jnp.bool_)
        return G.resolve_moves(key, pos, target, walkable, priority=priority)

    def replenish(self, key: jax.Array, left: jax.Array, before: jax.Array,
                  occupied: jax.Array) -> jax.Array:
        """bool[2, H·W]: the coins after this step's draws, from the coins ``left`` after
        collection, those ``before`` it and the cells under players."""
        if self.coin_rule == SPAWN:
            bits = jax.random.bits(key, (self.num_cells,), jnp.uint32)
            new = ~occupied & ~jnp.any(left, axis=0) & ((bits >> 1) < self.spawn_threshold)
            blue = (bits & 1).astype(jnp.bool_)
            return left | jnp.stack([new & ~blue, new & blue])
        taken = jnp.any(before & ~left, axis=1)  # [colour]
        if self.coin_rule == ONE_ALTERNATING:
            was_blue = jnp.any(before[1])
            cell = self._pick_cell(key, ~occupied) & jnp.any(taken)
            return left | jnp.stack([cell & was_blue, cell & ~was_blue])
        cells = jax.random.randint(key, (2,), 0, self.num_cells)
        fresh = jnp.arange(self.num_cells)[None, :] == cells[:, None]
        return jnp.where(taken[:, None], fresh, left)

    def observe(self, state: CoinsState) -> dict[str, jax.Array]:
        """float32[2, H, W, 4] binary planes (module docstring)."""
        self.check_state(state)
        players = self.player_cells(state.pos)
        coins = state.coins.reshape(2, self.num_cells)
        if self.absolute_colours:
            planes = jnp.stack([players[0], players[1], coins[0], coins[1]], axis=-1)
            swapped = (jnp.stack([players[1], players[0], coins[1], coins[0]], axis=-1)
                       if self.symmetrise_obs else planes)
            planes = jnp.stack([swapped, planes])  # row 0: the innovator
        else:
            planes = jnp.stack([players, players[::-1], coins, coins[::-1]], axis=-1)
        size = self.grid_size
        return {"obs": planes.reshape(2, size, size, 4).astype(jnp.float32)}

    def render(self, state: CoinsState) -> jax.Array:
        """uint8[H, W, 3], one pixel per cell: players over coins (colours in
        ``RENDER_COLOURS``; a cell holding both coins or both players is purple resp. white)."""
        self.check_state(state)
        players = self.player_cells(state.pos).astype(jnp.int32)
        coins = state.coins.reshape(2, self.num_cells).astype(jnp.int32)
        coin_code = coins[0] + 2 * coins[1]
        player_code = players[0] + 2 * players[1]
        code = jnp.where(player_code > 0, 3 + player_code, coin_code)
        return jnp.asarray(RENDER_COLOURS)[code].reshape(self.grid_size, self.grid_size, 3)

    # ----------------------------------------------------------------- custom states
    def state_from_grid(self, rows: list[str], positions, t: int = 0) -> CoinsState:
        """A state from the coins on each cell (``R`` red, ``B`` blue, ``*`` both, space or
        ``.`` none) and the players' cells ``positions[2, 2]`` (players may stand on coins)."""
        if isinstance(rows, str) or len(rows) != self.grid_size or any(
                not isinstance(r, str) or len(r) != self.grid_size for r in rows):
            raise ValueError(f"{self.env_id}: rows must be {self.grid_size} strings of "
                             f"{self.grid_size} characters")
        chars = "".join(rows)
        bad = sorted(set(chars) - set(EMPTY_CHARS + RED_CHAR + BLUE_CHAR + BOTH_CHAR))
        if bad:
            raise ValueError(f"{self.env_id}: unknown cell characters {bad}")
        red = np.array([c in RED_CHAR + BOTH_CHAR for c in chars])
        blue = np.array([c in BLUE_CHAR + BOTH_CHAR for c in chars])
        if self.coin_rule == SPAWN and np.any(red & blue):
            raise ValueError(f"{self.env_id}: at most one coin per cell")
        if self.coin_rule == ONE_ALTERNATING and red.sum() + blue.sum() != 1:
            raise ValueError(f"{self.env_id}: the board holds exactly one coin")
        if self.coin_rule == TWO_COINS and (red.sum(), blue.sum()) != (1, 1):
            raise ValueError(f"{self.env_id}: the board holds one red and one blue coin")
        pos = np.asarray(positions)
        if pos.shape != (2, 2) or not np.issubdtype(pos.dtype, np.integer):
            raise ValueError(f"{self.env_id}: positions must be integers of shape (2, 2)")
        if np.any(pos < 0) or np.any(pos >= self.grid_size):
            raise ValueError(f"{self.env_id}: positions must lie on the "
                             f"{self.grid_size}×{self.grid_size} grid")
        if not self.share_cells and np.array_equal(pos[0], pos[1]):
            raise ValueError(f"{self.env_id}: the players cannot share a cell")
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not (
                0 <= t < self.max_steps):
            raise ValueError(f"{self.env_id}: t must be an integer in [0, {self.max_steps - 1}]")
        shape = (2, self.grid_size, self.grid_size)
        return CoinsState(pos=jnp.asarray(pos, jnp.int32),
                          coins=jnp.asarray(np.stack([red, blue]).reshape(shape)),
                          t=jnp.asarray(t, jnp.int32), game=self.env_id)

    def state_to_grid(self, state: CoinsState) -> tuple[list[str], np.ndarray]:
        """Inverse of :meth:`state_from_grid`: (rows, positions[2, 2])."""
        red, blue = np.asarray(state.coins)
        table = np.array([[" ", RED_CHAR], [BLUE_CHAR, BOTH_CHAR]])
        rows = ["".join(r) for r in table[blue.astype(int), red.astype(int)]]
        return rows, np.asarray(state.pos)


class CoinsTorus(Coins):
    """``coins`` on a wrapping grid where players may share a cell and a coin (§4.3)."""

    env_id = "coins-torus"
    torus = True
    share_cells = True


class CoinGameLOLA(Coins):
    """LOLA's coin game (§4.3): 3×3 torus, one coin of alternating colour, 4 moves,
    absolute-colour planes."""

    env_id = "coin-game-lola"
    torus = True
    share_cells = True
    coin_rule = ONE_ALTERNATING
    moves = LOLA_MOVES
    absolute_colours = True

    def __init__(self, grid_size: int = 3, **kwargs):
        super().__init__(grid_size=grid_size, **kwargs)


class CoinGame2Coin(Coins):
    """JaxMARL's coin game (§4.3): 3×3 torus, one red and one blue coin always present."""

    env_id = "coin-game-2coin"
    torus = True
    share_cells = True
    coin_rule = TWO_COINS
    moves = JAXMARL_MOVES

    def __init__(self, grid_size: int = 3, **kwargs):
        super().__init__(grid_size=grid_size, **kwargs)


# --------------------------------------------------------------------- scripted policy
def greedy_own_coin_actions(env: Coins, state: CoinsState) -> jax.Array:
    """int32[2]: each player's action towards its nearest own-colour coin.

    Every action is scored by the distance (Manhattan, wrapped on a torus) from the cell it
    requests to the nearest own-colour coin; the first action of least distance wins, and
    staying wins ties (so a player with no own coin on the board stays). The other player's
    coins are not avoided: a pair of these players collects mostly, not only, own coins.
    """
    size = env.grid_size
    target = jax.vmap(lambda a: env.move_targets(state.pos, jnp.full(2, a)))(
        jnp.arange(env.action_space.n))  # [action, player, 2]
    if not env.torus:
        target = jnp.clip(target, 0, size - 1)
    cells = jnp.arange(size * size)
    coin_rc = jnp.stack([cells // size, cells % size], axis=1)  # [cell, 2]
    delta = jnp.abs(target[:, :, None, :] - coin_rc[None, None])
    if env.torus:
        delta = jnp.minimum(delta, size - delta)
    dist = delta.sum(-1)  # [action, player, cell]
    own = state.coins.reshape(2, -1)  # coins of player i's colour are coins[i]
    nearest = jnp.min(jnp.where(own[None], dist, 4 * size), axis=-1)  # [action, player]
    is_stay = np.arange(env.action_space.n) == (env.stay_action if env.stay_action is not None
                                                else -1)
    score = 2 * nearest + (~is_stay)[:, None]
    return jnp.argmin(score, axis=0).astype(jnp.int32)
