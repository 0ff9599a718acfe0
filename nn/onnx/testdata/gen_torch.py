#!/usr/bin/env python3
"""Models exported with torch.onnx.export, as users bring them, for parity
with onnxruntime: a BERT-style encoder at opsets 14 and 17, a GPT-style
decoder with a causal mask, a ResNet-style CNN and a 2-layer LSTM.

    /usr/bin/python3 nn/onnx/testdata/gen_torch.py export   # Debian's python3-torch 1.13, python3-onnx
    python3 nn/onnx/testdata/gen_torch.py reference         # onnxruntime (pip), writes the outputs

Each case is testdata/ops/t_<name>/ (model.onnx, input_<i>.npy and
onnxruntime's output_<i>.npy); TestOps runs every case directory. The
weights are seeded random: parity is about the exported graph's operators
and patterns (LayerNorm, GELU as Erf, attention with a padding mask,
Trilu, Where, Expand, Gather embeddings, residual convolutions, stacked
LSTM), not about what the model computes.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ops")


def export():
    import torch
    from torch import nn

    torch.manual_seed(5)

    class Attention(nn.Module):
        def __init__(self, d, heads, causal):
            super().__init__()
            self.h, self.dk, self.causal = heads, d // heads, causal
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)

        def forward(self, x, mask):
            b, t, d = x.shape
            q, k, v = self.qkv(x).split(d, dim=-1)
            q = q.reshape(b, t, self.h, self.dk).transpose(1, 2)
            k = k.reshape(b, t, self.h, self.dk).transpose(1, 2)
            v = v.reshape(b, t, self.h, self.dk).transpose(1, 2)
            s = q @ k.transpose(-1, -2) / (self.dk ** 0.5)
            if self.causal:
                cm = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
                s = s.masked_fill(cm, float("-inf"))
            s = s + (1.0 - mask[:, None, None, :].to(s.dtype)) * -10000.0
            a = torch.softmax(s, dim=-1)
            return self.out((a @ v).transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self, d, heads, causal):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.att = Attention(d, heads, causal)
            self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            self.pre = causal  # GPT: pre-norm; BERT: post-norm

        def forward(self, x, mask):
            if self.pre:
                x = x + self.att(self.ln1(x), mask)
                return x + self.ff(self.ln2(x))
            x = self.ln1(x + self.att(x, mask))
            return self.ln2(x + self.ff(x))

    class Transformer(nn.Module):
        def __init__(self, vocab=120, d=32, heads=4, layers=2, causal=False):
            super().__init__()
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Embedding(64, d)
            self.blocks = nn.ModuleList([Block(d, heads, causal) for _ in range(layers)])
            self.head = nn.Linear(d, vocab if causal else 2)
            self.causal = causal

        def forward(self, ids, mask):
            t = ids.shape[1]
            pos = torch.arange(t).unsqueeze(0).expand_as(ids)
            x = self.tok(ids) + self.pos(pos)
            for b in self.blocks:
                x = b(x, mask)
            return self.head(x if self.causal else x[:, 0])

    class ResBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(y)) + self.skip(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.layers = nn.Sequential(ResBlock(16, 16, 1), ResBlock(16, 32, 2), ResBlock(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.layers(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class LSTMNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.fc(y[:, -1])

    def save(name, model, args, names, opset, dynamic=None):
        model.eval()
        # BatchNorm statistics that are not the identity, so the fusion matters.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
        d = os.path.join(OUT, "t_" + name)
        os.makedirs(d, exist_ok=True)
        torch.onnx.export(model, args, os.path.join(d, "model.onnx"), opset_version=opset,
                          input_names=names, output_names=["out"], dynamic_axes=dynamic, do_constant_folding=True)
        for i, a in enumerate(args):
            np.save(os.path.join(d, f"input_{i}.npy"), a.numpy())

    ids = torch.randint(0, 120, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.int64)
    mask[1, 9:] = 0
    dyn = {"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}}
    bert = Transformer()
    save("bert_opset14", bert, (ids, mask), ["ids", "mask"], 14, dyn)
    save("bert_opset17", bert, (ids, mask), ["ids", "mask"], 17, dyn)
    gpt = Transformer(causal=True)
    save("gpt_causal_opset14", gpt, (ids[:1], torch.ones(1, 12, dtype=torch.int64)), ["ids", "mask"], 14, dyn)
    save("resnet_opset13", ResNet(), (torch.randn(1, 3, 64, 64),), ["x"], 13, {"x": {0: "batch"}})
    save("lstm2_opset14", LSTMNet(), (torch.randn(2, 7, 8),), ["x"], 14, {"x": {0: "batch", 1: "seq"}})
    print("exported the t_ cases to", OUT)


def reference():
    import onnxruntime as ort
    for d in sorted(os.listdir(OUT)):
        if not d.startswith("t_"):
            continue
        p = os.path.join(OUT, d)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(p, "model.onnx"), so, providers=["CPUExecutionProvider"])
        feed = {vi.name: np.load(os.path.join(p, f"input_{i}.npy")) for i, vi in enumerate(sess.get_inputs())}
        for i, o in enumerate(sess.run(None, feed)):
            np.save(os.path.join(p, f"output_{i}.npy"), o)
        print(d, [o.shape for o in sess.get_outputs()])


if __name__ == "__main__":
    {"export": export, "reference": reference}[sys.argv[1] if len(sys.argv) > 1 else ""]()
