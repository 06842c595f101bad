from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbeddingsCalculatorOVOptions(_message.Message):
    __slots__ = ("models_path", "normalize_embeddings", "pooling", "truncate", "target_device", "plugin_config")
    class Pooling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CLS: _ClassVar[EmbeddingsCalculatorOVOptions.Pooling]
        LAST: _ClassVar[EmbeddingsCalculatorOVOptions.Pooling]
        MEAN: _ClassVar[EmbeddingsCalculatorOVOptions.Pooling]
    CLS: EmbeddingsCalculatorOVOptions.Pooling
    LAST: EmbeddingsCalculatorOVOptions.Pooling
    MEAN: EmbeddingsCalculatorOVOptions.Pooling
    MODELS_PATH_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    TARGET_DEVICE_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_CONFIG_FIELD_NUMBER: _ClassVar[int]
    models_path: str
    normalize_embeddings: bool
    pooling: EmbeddingsCalculatorOVOptions.Pooling
    truncate: bool
    target_device: str
    plugin_config: str
    def __init__(self, models_path: _Optional[str] = ..., normalize_embeddings: _Optional[bool] = ..., pooling: _Optional[_Union[EmbeddingsCalculatorOVOptions.Pooling, str]] = ..., truncate: _Optional[bool] = ..., target_device: _Optional[str] = ..., plugin_config: _Optional[str] = ...) -> None: ...
