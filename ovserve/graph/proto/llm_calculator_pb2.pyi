from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class LLMCalculatorOptions(_message.Message):
    __slots__ = ("models_path", "max_num_batched_tokens", "cache_size", "block_size", "max_num_seqs", "dynamic_split_fuse", "device", "plugin_config", "best_of_limit", "max_tokens_limit", "enable_prefix_caching", "lora_dir", "lora_refresh_interval", "max_loras", "max_cpu_loras", "max_lora_rank", "deterministic")
    MODELS_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_BATCHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_SIZE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_SEQS_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_SPLIT_FUSE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_CONFIG_FIELD_NUMBER: _ClassVar[int]
    BEST_OF_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ENABLE_PREFIX_CACHING_FIELD_NUMBER: _ClassVar[int]
    LORA_DIR_FIELD_NUMBER: _ClassVar[int]
    LORA_REFRESH_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_LORAS_FIELD_NUMBER: _ClassVar[int]
    MAX_CPU_LORAS_FIELD_NUMBER: _ClassVar[int]
    MAX_LORA_RANK_FIELD_NUMBER: _ClassVar[int]
    DETERMINISTIC_FIELD_NUMBER: _ClassVar[int]
    models_path: str
    max_num_batched_tokens: int
    cache_size: int
    block_size: int
    max_num_seqs: int
    dynamic_split_fuse: bool
    device: str
    plugin_config: str
    best_of_limit: int
    max_tokens_limit: int
    enable_prefix_caching: bool
    lora_dir: str
    lora_refresh_interval: float
    max_loras: int
    max_cpu_loras: int
    max_lora_rank: int
    deterministic: bool
    def __init__(self, models_path: _Optional[str] = ..., max_num_batched_tokens: _Optional[int] = ..., cache_size: _Optional[int] = ..., block_size: _Optional[int] = ..., max_num_seqs: _Optional[int] = ..., dynamic_split_fuse: _Optional[bool] = ..., device: _Optional[str] = ..., plugin_config: _Optional[str] = ..., best_of_limit: _Optional[int] = ..., max_tokens_limit: _Optional[int] = ..., enable_prefix_caching: _Optional[bool] = ..., lora_dir: _Optional[str] = ..., lora_refresh_interval: _Optional[float] = ..., max_loras: _Optional[int] = ..., max_cpu_loras: _Optional[int] = ..., max_lora_rank: _Optional[int] = ..., deterministic: _Optional[bool] = ...) -> None: ...
