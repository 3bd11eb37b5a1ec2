"""Run by the DDP test under torchrun, and in-process for the single-process reference: trains a small MLP on
fixed data with the Trainer and saves the final weights (rank 0 only)."""
from __future__ import annotations

import os
import sys

import torch


def data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(150) % 3
    x = torch.randn(150, 4, generator=g) + 2 * y[:, None].float()
    return x[:111], y[:111], x[111:], y[111:]  # 111 training samples: the last batch of 15 splits 8 + 7


def fit(out: str, epochs: int = 3, batch_size: int = 32):
    import engine
    from engine.training import TensorData, TrainConfig, Trainer

    g = engine.Graph()
    prev = g.add_node("Input", shape=[4])
    for layer, params in (("Linear", {"out_features": 16}), ("Tanh", {}), ("Linear", {"out_features": 3})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    model = engine.build_model(g, seed=0)
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      TrainConfig(epochs=epochs, batch_size=batch_size, seed=0))
    result = trainer.fit(TensorData(*data()))
    assert result.status.value == "finished", result.message
    if trainer.rank == 0:
        torch.save({k: v.detach().clone() for k, v in trainer.module.state_dict().items()}, out)
    return result, trainer.world


if __name__ == "__main__":
    import torch.distributed as dist
    dist.init_process_group("gloo")
    result, world = fit(sys.argv[1])
    if dist.get_rank() == 0:
        last = result.history["epochs"][-1]
        print(f"world={world} loss={last['loss']:.6f} val_acc={last['val_acc']:.4f} pid={os.getpid()}")
    import gc
    gc.collect()  # the DDP model goes while its process group is alive (see engine/train_cli.py)
    dist.barrier()
    dist.destroy_process_group()
