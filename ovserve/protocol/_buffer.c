/*
 * ovserve.protocol._buffer.ReadOnlyBuffer: re-exports another object's memory through the buffer
 * protocol, read-only, without copying: either as it is (its own format, shape and strides, as
 * OVMS's pyovms.Tensor does with a buffer a handler gives it), or with a format and shape of our
 * choosing over C-contiguous memory (a tensor made from a request's raw bytes).
 *
 * Python 3.11 has no way to give a Python class the buffer protocol (PEP 688's __buffer__
 * arrived in 3.12), and OVMS handlers call bytes(t), np.array(t) and memoryview(t) on their
 * Tensors. This type is the base class of ovserve.protocol.tensor.Tensor (pyovms.Tensor) for exactly that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DIMS 32

typedef struct {
    PyObject_HEAD
    Py_buffer source;       /* the wrapped object's buffer, held for our lifetime */
    int has_source;
    int passthrough;        /* re-export the source's own format, shape and strides */
    char format[16];
    int ndim;
    Py_ssize_t itemsize;
    Py_ssize_t shape[MAX_DIMS];
    Py_ssize_t strides[MAX_DIMS];
} ReadOnlyBuffer;

static int
ReadOnlyBuffer_init(ReadOnlyBuffer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"source", "format", "shape", NULL};
    PyObject *source, *shape = Py_None;
    const char *format = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|zO", kwlist, &source, &format, &shape))
        return -1;
    if (self->has_source) {
        PyBuffer_Release(&self->source);
        self->has_source = 0;
    }
    if (format == NULL) {
        if (shape != Py_None) {
            PyErr_SetString(PyExc_TypeError, "shape needs a format");
            return -1;
        }
        if (PyObject_GetBuffer(source, &self->source, PyBUF_RECORDS_RO) < 0)
            return -1;
        self->has_source = 1;
        self->passthrough = 1;
        return 0;
    }
    self->passthrough = 0;
    if (strlen(format) >= sizeof(self->format)) {
        PyErr_SetString(PyExc_ValueError, "format string too long");
        return -1;
    }
    PyObject *seq = PySequence_Fast(shape, "shape must be a sequence of integers");
    if (seq == NULL)
        return -1;
    Py_ssize_t ndim = PySequence_Fast_GET_SIZE(seq);
    if (ndim > MAX_DIMS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d dimensions", MAX_DIMS);
        return -1;
    }
    Py_ssize_t count = 1;
    for (Py_ssize_t i = 0; i < ndim; i++) {
        Py_ssize_t dim = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i), PyExc_OverflowError);
        if (dim == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (dim < 0) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "shape dimensions must be non-negative");
            return -1;
        }
        self->shape[i] = dim;
        count *= dim;
    }
    Py_DECREF(seq);
    if (PyObject_GetBuffer(source, &self->source, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    self->has_source = 1;
    Py_ssize_t itemsize = PyBuffer_SizeFromFormat(format);
    if (itemsize <= 0) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "bad struct format %s", format);
        return -1;
    }
    if (count * itemsize != self->source.len) {
        PyErr_Format(PyExc_ValueError,
                     "shape and format describe %zd bytes but the buffer has %zd",
                     count * itemsize, self->source.len);
        return -1;
    }
    strcpy(self->format, format);
    self->ndim = (int)ndim;
    self->itemsize = itemsize;
    Py_ssize_t stride = itemsize;
    for (Py_ssize_t i = ndim - 1; i >= 0; i--) {
        self->strides[i] = stride;
        stride *= self->shape[i];
    }
    return 0;
}

static int
ReadOnlyBuffer_getbuffer(ReadOnlyBuffer *self, Py_buffer *view, int flags)
{
    if (!self->has_source) {
        PyErr_SetString(PyExc_BufferError, "buffer not initialized");
        return -1;
    }
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "pyovms.Tensor is read-only");
        return -1;
    }
    if (self->passthrough) {
        Py_buffer *src = &self->source;
        int contiguous = PyBuffer_IsContiguous(src, 'C');
        if (!contiguous && (flags & PyBUF_STRIDES) != PyBUF_STRIDES) {
            PyErr_SetString(PyExc_BufferError, "pyovms.Tensor: the buffer is not C-contiguous");
            return -1;
        }
        view->obj = (PyObject *)self;
        Py_INCREF(self);
        view->buf = src->buf;
        view->len = src->len;
        view->readonly = 1;
        view->itemsize = src->itemsize;
        view->format = (flags & PyBUF_FORMAT) ? (src->format ? src->format : "B") : NULL;
        view->ndim = src->ndim;
        view->shape = (flags & PyBUF_ND) ? src->shape : NULL;
        view->strides = ((flags & PyBUF_STRIDES) == PyBUF_STRIDES) ? src->strides : NULL;
        view->suboffsets = NULL;
        view->internal = NULL;
        if (!(flags & PyBUF_ND)) {
            view->ndim = 1;
            view->itemsize = 1;
            view->format = (flags & PyBUF_FORMAT) ? "B" : NULL;
        }
        return 0;
    }
    view->obj = (PyObject *)self;
    Py_INCREF(self);
    view->buf = self->source.buf;
    view->len = self->source.len;
    view->readonly = 1;
    view->itemsize = self->itemsize;
    view->format = (flags & PyBUF_FORMAT) ? self->format : NULL;
    view->ndim = self->ndim;
    view->shape = (flags & PyBUF_ND) ? self->shape : NULL;
    view->strides = ((flags & PyBUF_STRIDES) == PyBUF_STRIDES) ? self->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    if (!(flags & PyBUF_ND) && self->ndim != 1) {
        /* A consumer asking for a plain byte buffer gets one dimension of bytes. */
        view->ndim = 1;
        view->itemsize = 1;
        view->format = (flags & PyBUF_FORMAT) ? "B" : NULL;
    }
    return 0;
}

static void
ReadOnlyBuffer_dealloc(ReadOnlyBuffer *self)
{
    PyObject_GC_UnTrack(self);
    if (self->has_source) {
        PyBuffer_Release(&self->source);
        self->has_source = 0;
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
ReadOnlyBuffer_traverse(ReadOnlyBuffer *self, visitproc visit, void *arg)
{
    if (self->has_source)
        Py_VISIT(self->source.obj);
    return 0;
}

static PyObject *
ReadOnlyBuffer_ptr(ReadOnlyBuffer *self, void *closure)
{
    if (!self->has_source)
        Py_RETURN_NONE;
    return PyLong_FromVoidPtr(self->source.buf);
}

static PyGetSetDef ReadOnlyBuffer_getset[] = {
    {"ptr", (getter)ReadOnlyBuffer_ptr, NULL, "Address of the first byte of the data.", NULL},
    {NULL},
};

static PyBufferProcs ReadOnlyBuffer_as_buffer = {
    (getbufferproc)ReadOnlyBuffer_getbuffer,
    NULL,
};

static PyTypeObject ReadOnlyBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ovserve.protocol._buffer.ReadOnlyBuffer",
    .tp_basicsize = sizeof(ReadOnlyBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Read-only re-export of another object's buffer with a given format and shape.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ReadOnlyBuffer_init,
    .tp_dealloc = (destructor)ReadOnlyBuffer_dealloc,
    .tp_traverse = (traverseproc)ReadOnlyBuffer_traverse,
    .tp_as_buffer = &ReadOnlyBuffer_as_buffer,
    .tp_getset = ReadOnlyBuffer_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ovserve.protocol._buffer", NULL, -1, NULL,
};

PyMODINIT_FUNC
PyInit__buffer(void)
{
    if (PyType_Ready(&ReadOnlyBufferType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReadOnlyBufferType);
    if (PyModule_AddObject(m, "ReadOnlyBuffer", (PyObject *)&ReadOnlyBufferType) < 0) {
        Py_DECREF(&ReadOnlyBufferType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
