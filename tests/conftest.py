import atexit
import os
import shutil
import tempfile

import pytest

# No hub at test time: every loader must work from local files.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The embedding cache on disk: never the user's ~/.cache/clipbench. Fixtures wider than one test (the demo run)
# share this session folder; each test gets its own (below), so that no test sees another's embeddings.
os.environ["CLIPBENCH_CACHE"] = tempfile.mkdtemp(prefix="clipbench-test-cache-")
atexit.register(shutil.rmtree, os.environ["CLIPBENCH_CACHE"], True)


@pytest.fixture(autouse=True)
def _own_embedding_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CLIPBENCH_CACHE", str(tmp_path_factory.mktemp("embedding-cache")))
