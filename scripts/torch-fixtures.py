#!/usr/bin/env python3
"""Regenerates tests/fixtures/torch-*.onnx and tests/fixtures/dynamo-*.onnx: models built and exported by
PyTorch (not by sculpt), with 90% of every conv and linear weight zeroed by magnitude, plus the logits PyTorch
computes for a few seeded inputs (the .json beside each file). torch-* come from the TorchScript exporter
(dynamo=False, opset 13); dynamo-* from PyTorch's current default exporter (dynamo=True, opset 18+), with and
without its graph optimisation and with a static or dynamic batch, for the model families sculpt supports
(LeNet-5, CIFAR ResNets with option-A and option-B shortcuts, a narrow ResNet-18). torch-bn-train.onnx is a
model exported in training mode, which the importer must refuse. tests/onnx_torch.rs imports each file and
checks sculpt's interpreter, runtime and C output against those logits.

Usage: python scripts/torch-fixtures.py   (needs torch, onnx and, for the dynamo exporter, onnxscript; e.g. the
venv of ../shared/bench/setup.sh plus `pip install onnxscript`)
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Block(nn.Module):
    """The CIFAR basic block of He et al. with the option-A shortcut (subsample, zero-pad channels)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class ResNet8(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.layers = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class LeNet5View(LeNet5):
    """LeNet-5 flattening with x.view(x.size(0), -1), which exports the batch size as shape arithmetic."""

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BlockB(nn.Module):
    """The basic block with the option-B shortcut: a strided 1x1 conv and a batch norm when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.short(x))


class ResNetB(nn.Module):
    """A CIFAR ResNet with option-B blocks: `blocks` per stage, stage widths `widths`."""

    def __init__(self, blocks, widths):
        super().__init__()
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(BlockB(cin, w, 2 if (b == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1).flatten(1))


def prune_(model, sparsity):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.data
            k = int(w.numel() * sparsity)
            thr = w.abs().flatten().kthvalue(k).values
            w[w.abs() <= thr] = 0.0


def randomize_bn_(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=gen)
            m.bias.data = 0.4 * torch.rand(c, generator=gen) - 0.2
            m.running_mean.data = 0.4 * torch.rand(c, generator=gen) - 0.2
            m.running_var.data = 0.5 + torch.rand(c, generator=gen)


def export(name, model, shape, gen):
    prune_(model, 0.9)
    randomize_bn_(model, gen)
    model.eval()
    x = torch.rand((4,) + shape, generator=gen)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(OUT, f"torch-{name}.onnx")
    torch.onnx.export(model, (x[:1],), path, input_names=["input"], output_names=["logits"],
                      opset_version=13, dynamo=False, dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(OUT, f"torch-{name}.json"), "w") as f:
        json.dump({"input_shape": list(shape), "inputs": x.flatten().tolist(), "logits": y.flatten().tolist(),
                   "torch": torch.__version__}, f)
    print(path, os.path.getsize(path), "bytes")


def export_dynamo(name, model, shape, gen, optimize, dynamic):
    """The default exporter of current PyTorch; two seeded samples and their logits beside the file."""
    prune_(model, 0.9)
    randomize_bn_(model, gen)
    model.eval()
    x = torch.rand((2,) + shape, generator=gen)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(OUT, f"dynamo-{name}.onnx")
    kw = {"dynamic_shapes": {"x": {0: torch.export.Dim("n")}}} if dynamic else {}
    example = x if dynamic else x[:1]  # a static batch is fixed at 1
    torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["logits"], dynamo=True,
                      optimize=optimize, external_data=False, **kw)
    with open(os.path.join(OUT, f"dynamo-{name}.json"), "w") as f:
        json.dump({"input_shape": list(shape), "inputs": x.flatten().tolist(), "logits": y.flatten().tolist(),
                   "torch": torch.__version__, "optimize": optimize, "dynamic_batch": dynamic}, f)
    print(path, os.path.getsize(path), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    export("lenet5", LeNet5(), (1, 28, 28), gen)
    export("resnet8", ResNet8(), (3, 16, 16), gen)
    for name, make, shape, optimize, dynamic in [
        ("lenet5-view", LeNet5View, (1, 28, 28), False, True),
        ("lenet5", LeNet5, (1, 28, 28), True, False),
        ("resnet8a", ResNet8, (3, 16, 16), False, True),
        ("resnet8a-opt", ResNet8, (3, 16, 16), True, False),
        ("resnet8b", lambda: ResNetB(1, [8, 16, 32]), (3, 16, 16), False, True),
        ("resnet8b-opt", lambda: ResNetB(1, [8, 16, 32]), (3, 16, 16), True, True),
        ("resnet18-narrow", lambda: ResNetB(2, [4, 8, 16, 32]), (3, 16, 16), True, True),
    ]:
        export_dynamo(name, make(), shape, gen, optimize, dynamic)
    # The dynamo exporter writes an inference batch norm even for a model in training mode; the TorchScript
    # one with training=TRAINING writes BatchNormalization with training_mode=1.
    model = ConvBn().train()
    path = os.path.join(OUT, "torch-bn-train.onnx")
    torch.onnx.export(model, (torch.rand(2, 1, 8, 8, generator=gen),), path, input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=15,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
