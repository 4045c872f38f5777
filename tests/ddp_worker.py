"""One process of tests/test_finetune.py's two-process run (launched by torchrun): trains the tiny model on its
share of the items and writes which items it saw and the adapter weights it ended with."""
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_finetune import ALL, CODE, encoded, tiny_model, tiny_tokenizer

from training import finetune

out = Path(sys.argv[1])
dist.init_process_group("gloo")
torch.set_num_threads(1)
tok = tiny_tokenizer([CODE, CODE.replace("width", "w")])
items = encoded(tok, 8)
for i, item in enumerate(items):
    item["index"] = i
cfg = finetune.Config(steps=6, lr=5e-2, warmup=1, rank=4, alpha=8, targets=ALL)
model = finetune.with_lora(tiny_model(len(tok)), cfg)
seen = []
real = finetune.item_loss
finetune.item_loss = lambda m, item: (seen.append(item["index"]), real(m, item))[1]
finetune.train(model, items, cfg)
rank = dist.get_rank()
torch.save({"seen": seen, "lora": {k: v for k, v in model.state_dict().items() if "lora_" in k}},
           out / f"rank{rank}.pt")
dist.destroy_process_group()
