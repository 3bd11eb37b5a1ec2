"""Started by bench/ddp.py under torchrun: trains a template on digits-28 with the Trainer and prints samples/s."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import engine  # noqa: E402
from engine.data import load_data  # noqa: E402
from engine.templates import template_path  # noqa: E402
from engine.training import TensorData, TrainConfig, Trainer  # noqa: E402


def main() -> None:
    template, epochs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    bundle = load_data({"source": "digits", "params": {"size": 28}, "split": {"val": 0.0, "test": 0.0}})
    x, y = torch.as_tensor(bundle.train.x), torch.as_tensor(bundle.train.y, dtype=torch.int64)
    model = engine.build_model(engine.load_project(template_path(template)).graph, seed=0)
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), 1e-3),
                      TrainConfig(epochs=epochs, batch_size=batch))
    t = time.perf_counter()
    result = trainer.fit(TensorData(x, y))
    seconds = time.perf_counter() - t
    if trainer.rank == 0:
        print(f"RESULT world={trainer.world} samples_per_s={len(x) * epochs / seconds:.1f} "
              f"loss={result.history['epochs'][-1]['loss']:.4f} threads={torch.get_num_threads()}", flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
