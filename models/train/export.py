"""Model configuration and Hugging Face PaliGemma checkpoint export (the file set, key style and
tensor names of ../shared/fixtures/paligemma-tiny/pg-f32, which follow google/paligemma-3b-*)."""
import json
import os
import shutil

import safetensors_io


def embedding_rows(pieces):
    # As the HF conversion: resize_token_embeddings(pieces + 2, pad_to_multiple_of=64).
    return -(-(pieces + 2) // 64) * 64


def make_config(pieces, image_size=112, patch_size=16, vision_hidden=192, vision_layers=4,
                text_hidden=192, text_layers=4, text_heads=4, head_dim=48):
    n_image = (image_size // patch_size) ** 2
    return {
        "_name_or_path": "vlmdescribe/vlmdescribe-tiny",
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "bos_token_id": 2,
        "eos_token_id": 1,
        "hidden_size": text_hidden,
        "ignore_index": -100,
        "image_token_index": pieces,  # <image> is the first id after the sentencepiece pieces
        "model_type": "paligemma",
        "pad_token_id": 0,
        "projection_dim": text_hidden,
        "text_config": {
            "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": text_hidden,
            "intermediate_size": 4 * text_hidden,
            "model_type": "gemma",
            "num_attention_heads": text_heads,
            "num_hidden_layers": text_layers,
            "num_image_tokens": n_image,
            "num_key_value_heads": 1,
            "head_dim": head_dim,
            "rms_norm_eps": 1e-06,
            "rope_theta": 10000.0,
            "max_position_embeddings": 8192,
            "torch_dtype": "float32",
            "vocab_size": embedding_rows(pieces),
        },
        "torch_dtype": "float32",
        "transformers_version": "4.44.0",
        "vision_config": {
            "hidden_size": vision_hidden,
            "image_size": image_size,
            "intermediate_size": 4 * vision_hidden,
            "layer_norm_eps": 1e-06,
            "model_type": "siglip_vision_model",
            "num_attention_heads": vision_hidden // 64,
            "num_hidden_layers": vision_layers,
            "num_image_tokens": n_image,
            "patch_size": patch_size,
            "projection_dim": text_hidden,
            "projector_hidden_act": "gelu_fast",
            "hidden_act": "gelu_pytorch_tanh",
            "vision_use_head": False,
        },
        "vocab_size": pieces,
    }


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_checkpoint(out, config, tensors, tokenizer_model, dtype="F32"):
    """Write everything but README.md (the model card is written by hand with the results)."""
    os.makedirs(out, exist_ok=True)
    name = "float32" if dtype == "F32" else "bfloat16"
    config = {**config, "torch_dtype": name,
              "text_config": {**config["text_config"], "torch_dtype": name}}
    _write_json(os.path.join(out, "config.json"), config)
    _write_json(os.path.join(out, "generation_config.json"),
                {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0})
    size = config["vision_config"]["image_size"]
    _write_json(os.path.join(out, "preprocessor_config.json"), {
        "do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_seq_length": config["text_config"]["num_image_tokens"],
        "image_std": [0.5, 0.5, 0.5], "processor_class": "PaliGemmaProcessor", "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"height": size, "width": size}})
    specials = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                "unk_token": "<unk>"}
    _write_json(os.path.join(out, "special_tokens_map.json"),
                {**specials, "additional_special_tokens": ["<image>"]})
    _write_json(os.path.join(out, "tokenizer_config.json"), {
        "add_bos_token": False, "add_eos_token": False, **specials,
        "processor_class": "PaliGemmaProcessor", "tokenizer_class": "GemmaTokenizer",
        "model_max_length": 1000000000000000019884624838656,
        "added_tokens_decoder": {str(config["image_token_index"]): {
            "content": "<image>", "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True}}})
    shutil.copyfile(tokenizer_model, os.path.join(out, "tokenizer.model"))
    safetensors_io.save(os.path.join(out, "model.safetensors"), tensors, dtype)
