#!/usr/bin/env python3
"""Writes GLM-4.5/config.json and GLM-4.5-Air/config.json for tests/cli_inspect.sh (quench diff).

GLM-4.5-Air: tests/data/configs/GLM-4.5-Air/config.json. GLM-4.5 (355B-A32B): the same file with
the values of ../shared/docs/architectures.md §7.6 / §12.2 (hidden 5120, 92 layers of which 3
dense, ffn 12288, expert ffn 1536, 160 experts, q/k norm, routed scaling 2.5). Both get the same
FP8_BLOCK config group as compressed-tensors 0.13 writes it (spec §3.11 G); GLM-4.5's ignore list
names every Linear kept in bf16 the way llm-compressor lists them (lm_head, all attention
projections, the dense MLPs, the routers and shared experts, and the MTP layer's), Air's only
lm_head. Files are written as compressed-tensors does (sort_keys, indent 2, no final newline).
"""
import json, os

here = os.path.dirname(os.path.abspath(__file__))
air = json.load(open(os.path.join(here, "..", "configs", "GLM-4.5-Air", "config.json")))

def args(strategy, dynamic, group_size=None, block=None, observer="minmax"):
    return {"actorder": None, "block_structure": block, "dynamic": dynamic, "group_size": group_size,
            "num_bits": 8, "observer": observer, "observer_kwargs": {}, "scale_dtype": None,
            "strategy": strategy, "symmetric": True, "type": "float", "zp_dtype": None}

def qconfig(ignore):
    return {"config_groups": {"group_0": {
                "format": "float-quantized",
                "input_activations": args("group", True, 128, observer=None),
                "output_activations": None, "targets": ["Linear"],
                "weights": args("block", False, block=[128, 128])}},
            "format": "float-quantized", "global_compression_ratio": None, "ignore": ignore,
            "kv_cache_scheme": None, "quant_method": "compressed-tensors",
            "quantization_status": "compressed", "sparsity_config": {}, "transform_config": {},
            "version": "0.13.0"}

big = dict(air)
big.update({"hidden_size": 5120, "num_hidden_layers": 92, "first_k_dense_replace": 3,
            "intermediate_size": 12288, "moe_intermediate_size": 1536, "n_routed_experts": 160,
            "use_qk_norm": True, "routed_scaling_factor": 2.5})
ign = ["lm_head"]
for i in range(93):  # 92 layers + the MTP layer 92
    p = f"model.layers.{i}"
    ign += [f"{p}.self_attn.{x}_proj" for x in "qkvo"]
    if i < 3:
        ign += [f"{p}.mlp.{x}_proj" for x in ("gate", "up", "down")]
    else:
        ign += [f"{p}.mlp.gate"] + [f"{p}.mlp.shared_experts.{x}_proj" for x in ("gate", "up", "down")]
    if i == 92:
        ign.append(f"{p}.eh_proj")
big["quantization_config"] = qconfig(ign)
air = dict(air)
air["quantization_config"] = qconfig(["lm_head"])
for name, cfg in (("GLM-4.5", big), ("GLM-4.5-Air", air)):
    os.makedirs(os.path.join(here, name), exist_ok=True)
    with open(os.path.join(here, name, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))
print(len(ign), "ignore entries in GLM-4.5")
