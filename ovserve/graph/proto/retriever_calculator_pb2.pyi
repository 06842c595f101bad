from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RetrieverCalculatorOptions(_message.Message):
    __slots__ = ("embedding_models_path", "store_path", "chroma_url", "collection", "top_k", "prompt_template", "target_device", "rerank_models_path", "rerank_candidates")
    EMBEDDING_MODELS_PATH_FIELD_NUMBER: _ClassVar[int]
    STORE_PATH_FIELD_NUMBER: _ClassVar[int]
    CHROMA_URL_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TARGET_DEVICE_FIELD_NUMBER: _ClassVar[int]
    RERANK_MODELS_PATH_FIELD_NUMBER: _ClassVar[int]
    RERANK_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    embedding_models_path: str
    store_path: str
    chroma_url: str
    collection: str
    top_k: int
    prompt_template: str
    target_device: str
    rerank_models_path: str
    rerank_candidates: int
    def __init__(self, embedding_models_path: _Optional[str] = ..., store_path: _Optional[str] = ..., chroma_url: _Optional[str] = ..., collection: _Optional[str] = ..., top_k: _Optional[int] = ..., prompt_template: _Optional[str] = ..., target_device: _Optional[str] = ..., rerank_models_path: _Optional[str] = ..., rerank_candidates: _Optional[int] = ...) -> None: ...
