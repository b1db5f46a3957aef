"""Install ``mvit_tasks`` (core) and ``projects`` (one sub-package per task).

Third-party tasks register through the entry-point group ``mvit_tasks.tasks``
(``name = package.module:TaskClass``); this package declares none.
"""

from setuptools import find_packages, setup

setup(
    name="mvit_tasks",
    version="0.1.0",
    description="Multiscale Vision Transformers (MViT / MViTv2) for video, detection and AVA",
    packages=find_packages(include=["mvit_tasks*", "projects*"]),
    package_data={"": ["*.yaml", "configs/*.yaml", "configs/**/*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "pytorchvideo==0.1.5",
        "av",
        "opencv-python-headless",
        "pycocotools",
        "pyyaml",
        "fvcore",
        "tqdm",
        "tensorboard",
        "matplotlib",
        "numpy",
    ],
    extras_require={"test": ["timm", "pytest", "faster-coco-eval"], "coco": ["faster-coco-eval"]},
    entry_points={"mvit_tasks.tasks": []},
)
