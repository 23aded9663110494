"""``python -m evalsuite`` runs the command line."""

from evalsuite.cli import app

# guarded: spawned worker processes (vllm data parallel, vLLM's own workers) re-import the main module
if __name__ == "__main__":
    app(prog_name="evalsuite")
