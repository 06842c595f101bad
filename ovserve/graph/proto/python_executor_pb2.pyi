from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PythonExecutorCalculatorOptions(_message.Message):
    __slots__ = ("handler_path",)
    HANDLER_PATH_FIELD_NUMBER: _ClassVar[int]
    handler_path: str
    def __init__(self, handler_path: _Optional[str] = ...) -> None: ...
