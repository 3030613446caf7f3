"""Packaging for memnet_tf."""

import glob

from setuptools import find_packages, setup

setup(
    name="memnet_tf",
    version="0.1.0",
    description="MemTrack (dynamic memory networks for object tracking) in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["memnet_tf", "memnet_tf.*"]),
    # The experiment flagfiles, for `--experiment=NAME` outside a checkout (memnet_tf/cli.py).
    data_files=[("share/memnet_tf/experiments", sorted(glob.glob("experiments/*.flags")))],
    install_requires=[
        "tensorflow>=2.16",  # ships Keras 3
        "keras>=3",
        "absl-py",
        "numpy",
        "opencv-python-headless",
        "tensorboard",
        "matplotlib",
        "pillow",
    ],
    extras_require={
        # got10k: the score-equality tests compare our metrics with the toolkit itself.
        # ai-edge-litert: the LiteRT export/runtime tests (a ~22 MB wheel from PyPI).
        "test": ["pytest>=7", "got10k", "ai-edge-litert"],
        # LiteRT runtime for `--litert=DIR` and `export --format=litert`.
        "litert": ["ai-edge-litert"],
        # benchmarks/track_speed.py's PyTorch peers. Pinned: a plain `torch` pulls a
        # multi-GB CUDA build; 2.13.0 resolves to the CPU wheel on this project's machines.
        "bench": ["torch==2.13.0"],
        # The got10k toolkit, used to cross-check our scores and as an experiment runner.
        "got10k": ["got10k"],
        # TraX server side for the VOT toolkit (memnet_tf.tracking.trax_runner). The toolkit
        # itself (vot-toolkit) goes into a virtualenv of its own: it requires opencv-python,
        # which clashes with our opencv-python-headless (both install cv2).
        "trax": ["vot-trax"],
    },
)
