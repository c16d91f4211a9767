"""Test settings: a persistent JAX compilation cache shared by the whole session, so that the
same jitted program used by several test files compiles once."""

import os
from pathlib import Path

import jax

_cache = Path(os.environ.get("PROSOCIAL_TEST_JAX_CACHE", Path(__file__).parent.parent
                             / ".pytest_cache" / "jax"))
jax.config.update("jax_compilation_cache_dir", str(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
