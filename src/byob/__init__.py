"""byob: bring your own bucket."""

import os

# Arrow's C++ code allocates from its process-wide default pool (mimalloc unless told
# otherwise), which pyarrow.set_memory_pool does not change; mimalloc keeps freed memory per
# thread, so every extra transfer thread added ~20 MB of peak RSS. The variable is read once,
# when Arrow first allocates, so it is set before anything of byob imports pyarrow.
# An operator's own setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
