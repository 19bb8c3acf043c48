from specmix.hf.modeling import SpecMixForCausalLM, SpecMixModel  # noqa: F401
