from specmix.hf.configuration import SpecMixConfig  # noqa: F401
