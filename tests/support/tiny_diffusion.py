"""Tiny random-weight SD 1.5 / SDXL models built from configs, saved the ways real models ship.

Nothing here touches the hub: the CLIP tokenizer is a hand-made byte-level
vocabulary, every network is built from a config with seeded random weights,
and the results are written as a diffusers folder, as an original (LDM-layout)
single-file checkpoint with a weights-free config folder beside it, and as a
LoRA file. The production loader (`render.diffusion`) then loads them exactly
as it would a downloaded model. Weight values do not matter to what the tests
check (determinism, batching, loading paths), only shapes do.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

# Words the prompts in the tests and the default collection use; each gets BPE
# merges so that it encodes as one token, the rest fall back to bytes.
_WORDS = (
    "a generative composition style colour palette complexity of serene energetic mysterious playful austere "
    "opulent flow rings grid constellation terrain shards ink watercolor risograph neon blueprint oil dawn "
    "arcade ledger gallery bullion circuit text watermark signature blurry low quality deformed brand"
)

TEXT_HIDDEN = 32  # CLIP-L stand-in (SD 1.5 and SDXL's first encoder)
TEXT2_HIDDEN = 64  # OpenCLIP-G stand-in; must differ from TEXT_HIDDEN, the single-file loader tells them apart by it
TIME_EMBED = 8  # SDXL addition_time_embed_dim


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(table.items()))


def clip_tokenizer() -> CLIPTokenizer:
    """A byte-level BPE CLIP tokenizer over a hand-made vocabulary (about 700 entries)."""
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in [*chars, *(c + "</w>" for c in chars)]:
        vocab[token] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in _WORDS.split():
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
            merged = pieces[0] + pieces[1]
            vocab.setdefault(merged, len(vocab))
            pieces = [merged, *pieces[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 77
    return tokenizer


def _text_config(tokenizer: CLIPTokenizer, hidden: int, **extra: Any) -> CLIPTextConfig:
    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=32,
        **extra,
    )


def _vae(scaling_factor: float) -> AutoencoderKL:
    # Four blocks keep the real VAE's scale factor of 8 at a fraction of its cost.
    return AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )


def tiny_sd15(seed: int = 0) -> StableDiffusionPipeline:
    """An SD 1.5-shaped pipeline (CLIP text encoder, cross-attention UNet, KL VAE) with random weights."""
    tokenizer = clip_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(tokenizer, TEXT_HIDDEN))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    pipe = StableDiffusionPipeline(
        vae=_vae(0.18215),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    return pipe


def tiny_sdxl(seed: int = 0) -> StableDiffusionXLPipeline:
    """An SDXL-shaped pipeline: two text encoders, text_time added conditioning, linear projections."""
    tokenizer = clip_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(tokenizer, TEXT_HIDDEN))
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer, TEXT2_HIDDEN, hidden_act="gelu"))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN + TEXT2_HIDDEN,
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 2),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=TIME_EMBED * 6 + 32,
        norm_num_groups=8,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(0.13025),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        unet=unet.eval(),
        scheduler=_scheduler(),
        force_zeros_for_empty_prompt=True,
    )


# --- the original (LDM / A1111) single-file layout -----------------------------------------------
# The inverse of diffusers' convert_ldm_*: real single-file checkpoints use these names, so the
# production loader's from_single_file path is exercised on the layout it meets in the wild.

_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _resnet_ldm(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    raise ValueError(f"unknown resnet parameter {rest}")


def unet_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    per_block = int(config["layers_per_block"]) + 1
    up_has_attention = ["CrossAttn" in name for name in config["up_block_types"]]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module in _UNET_TOP:
            out[f"{_UNET_TOP[module]}.{param}"] = value
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            index = 1 + int(m[1]) * per_block + int(m[3])
            rest = _resnet_ldm(m[4]) if m[2] == "resnets" else m[4]
            out[f"input_blocks.{index}.{0 if m[2] == 'resnets' else 1}.{rest}"] = value
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            out[f"input_blocks.{(int(m[1]) + 1) * per_block}.0.op.{m[2]}"] = value
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            out[f"middle_block.{2 * int(m[1])}.{_resnet_ldm(m[2])}"] = value
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            out[f"middle_block.1.{m[1]}"] = value
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            index = int(m[1]) * per_block + int(m[3])
            rest = _resnet_ldm(m[4]) if m[2] == "resnets" else m[4]
            out[f"output_blocks.{index}.{0 if m[2] == 'resnets' else 1}.{rest}"] = value
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            block = int(m[1])
            slot = 2 if up_has_attention[block] else 1
            out[f"output_blocks.{block * per_block + per_block - 1}.{slot}.conv.{m[2]}"] = value
        else:
            raise ValueError(f"no LDM name for UNet parameter {key}")
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def vae_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    blocks = len(config["up_block_types"])
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            name = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            name = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            name = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            name = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            name = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            name = f"{m[1]}.mid.attn_1.{attention[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm":
                value = value[:, :, None, None]  # the original stores these as 1x1 convolutions
        else:
            name = key.replace("conv_norm_out", "norm_out")
        out[name.replace("conv_shortcut", "nin_shortcut")] = value
    return {"first_stage_model." + k: v for k, v in out.items()}


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def open_clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    top = {
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    layer_names = (
        ("self_attn.out_proj", "attn.out_proj"),
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
    )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            if m[2] == "q":
                parts = [state[key.replace(".q_proj.", f".{p}_proj.")] for p in "qkv"]
                out[f"transformer.resblocks.{m[1]}.attn.in_proj_{m[3]}"] = torch.cat(parts)
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)", key):
            rest = m[2]
            for new, old in layer_names:
                rest = rest.replace(new, old)
            out[f"transformer.resblocks.{m[1]}.{rest}"] = value
        else:
            raise ValueError(f"no OpenCLIP name for {key}")
    return {prefix + k: v for k, v in out.items()}


def ldm_state_dict(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline) -> dict[str, torch.Tensor]:
    state = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)
    state.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    if isinstance(pipe, StableDiffusionXLPipeline):
        state.update(clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        state.update(open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    else:
        state.update(clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer."))
    return {k: v.detach().contiguous() for k, v in state.items()}


def save_single_file(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline, checkpoint: Path, config: Path) -> None:
    """Write an LDM-layout .safetensors plus the weights-free diffusers config folder it loads with."""
    save_file(ldm_state_dict(pipe), str(checkpoint))
    pipe.save_pretrained(config)
    for weights in config.rglob("*.safetensors"):
        weights.unlink()


def save_lora(pipe: StableDiffusionPipeline, directory: Path, weight_name: str, seed: int = 1, rank: int = 4) -> Path:
    """A rank-`rank` LoRA on every attention projection of the UNet, in the diffusers/PEFT layout."""
    generator = torch.Generator().manual_seed(seed)
    layers: dict[str, torch.Tensor] = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear) and re.search(r"\.(to_q|to_k|to_v|to_out\.0)$", name):
            a = torch.randn(rank, module.in_features, generator=generator) * 0.5
            b = torch.randn(module.out_features, rank, generator=generator) * 0.5
            layers[f"{name}.lora_A.weight"] = a
            layers[f"{name}.lora_B.weight"] = b
    directory.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(directory, unet_lora_layers=layers, weight_name=weight_name)
    return directory / weight_name


@dataclass(frozen=True)
class TinyModels:
    """Paths of one generated set of tiny models."""

    sd15_folder: Path
    sd15_file: Path
    sd15_file_config: Path
    sdxl_folder: Path
    sdxl_file: Path
    sdxl_file_config: Path
    lora_dir: Path  # holds brand.safetensors


def build_tiny_models(root: Path) -> TinyModels:
    """Generate every tiny model under root (about a second on two cores); same bytes every time."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    sd15 = tiny_sd15()
    sd15.save_pretrained(root / "sd15")
    save_single_file(sd15, root / "sd15.safetensors", root / "sd15-config")
    sdxl = tiny_sdxl()
    sdxl.save_pretrained(root / "sdxl")
    save_single_file(sdxl, root / "sdxl.safetensors", root / "sdxl-config")
    save_lora(sd15, root / "loras", "brand.safetensors")
    return TinyModels(
        sd15_folder=root / "sd15",
        sd15_file=root / "sd15.safetensors",
        sd15_file_config=root / "sd15-config",
        sdxl_folder=root / "sdxl",
        sdxl_file=root / "sdxl.safetensors",
        sdxl_file_config=root / "sdxl-config",
        lora_dir=root / "loras",
    )
