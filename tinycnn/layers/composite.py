"""Composite layers: a layer made of sublayers, the Keras way (a ``Layer`` that owns layers).

A composite looks like any other layer from outside. Its ``params``, ``grads`` and ``state``
are flat dicts whose keys join the sublayer's slot and the sublayer's own key with a dot
(``'conv1.kernel'``, ``'bn1.gamma'``; nested composites nest: ``'m0_3.conv1.kernel'``). They
are live views: reading ``params['conv1.kernel']`` gives the sublayer's own array, and writing
an entry writes it into the sublayer. So ``Sequential``, the optimizers (which update
``params`` in place from ``grads``), save/load, checkpoints, backend moves and the gradient
check work on a composite unchanged. ``get_weights`` lists every parameter, then every state
array (batch-norm statistics), in the order of those views; ``set_weights`` takes the same.
The layer hooks (:meth:`preserved`, :meth:`release_context`, the random-stream state) reach
every sublayer too.
"""

import contextlib
from collections.abc import MutableMapping

import numpy as np

from .. import backend
from ..errors import ShapeError
from .base import Layer


def walk(layers):
    """Every layer of ``layers`` and, depth first, the sublayers of the composite ones (code
    that acts on layers of one kind, e.g. every batch norm, must reach into composites)."""
    for layer in layers:
        yield layer
        if isinstance(layer, Composite):
            yield from walk(layer.sublayers)


class _FlatView(MutableMapping):
    """The ``params``, ``grads`` or ``state`` dicts of a composite's sublayers under one dict."""

    def __init__(self, sublayers, attr):
        self._sublayers, self._attr = sublayers, attr  # the owner's live slot -> layer dict

    def _dict_of(self, slot):
        return getattr(self._sublayers[slot], self._attr, {})

    def _split(self, key):
        slot, dot, rest = str(key).partition(".")
        if not dot or slot not in self._sublayers or rest not in self._dict_of(slot):
            raise KeyError(key)
        return slot, rest

    def __getitem__(self, key):
        slot, rest = self._split(key)
        return self._dict_of(slot)[rest]

    def __setitem__(self, key, value):
        slot, rest = self._split(key)
        self._dict_of(slot)[rest] = value

    def __delitem__(self, key):
        raise TypeError(f"the {self._attr} of a composite layer cannot be removed")

    def __iter__(self):
        for slot, layer in self._sublayers.items():
            for k in getattr(layer, self._attr, {}):
                yield f"{slot}.{k}"

    def __len__(self):
        return sum(len(getattr(layer, self._attr, {})) for layer in self._sublayers.values())

    def __repr__(self):
        return f"{{{', '.join(repr(k) for k in self)}}}"


class Composite(Layer):
    """Base class of layers built from sublayers.

    A subclass creates its sublayers with :meth:`_track` (in ``__init__``, or in ``build``
    when they depend on the input shape) under slot names without dots, builds them in
    ``build`` with :meth:`_build_sublayer`, and runs them in ``forward`` / ``backward``.
    """

    def __init__(self, **kwargs):
        self._sublayers = {}  # slot -> Layer, in a fixed order (the order of the weights)
        self._dtype = np.dtype("float32")
        super().__init__(**kwargs)

    # -- sublayers ----------------------------------------------------------------------
    def _track(self, slot, layer):
        if "." in slot or slot in self._sublayers:
            raise ValueError(f"bad or repeated sublayer slot {slot!r}")  # a programming error
        self._adopt_dtype(layer)
        self._sublayers[slot] = layer
        return layer

    def _adopt_dtype(self, layer):
        # a layer built elsewhere (an ensemble member) holds weights of its own dtype
        layer.dtype = self._dtype
        if layer.built and any(np.dtype(w.dtype) != self._dtype for w in layer.get_weights()):
            layer.set_weights([w.astype(self._dtype) for w in layer.get_weights()])

    def _build_sublayer(self, layer, input_shape):
        """Build ``layer`` for ``input_shape`` (or check it was built for it); return its output shape."""
        self._adopt_dtype(layer)
        if not layer.built:
            layer.build(tuple(input_shape))
        elif tuple(layer.input_shape) != tuple(input_shape):
            raise ShapeError(f"{self.name}: sublayer {layer.name!r} was built for {layer.input_shape}, "
                             f"now gets {tuple(input_shape)}")
        return layer.output_shape

    @property
    def sublayers(self):
        """The sublayers, in weight order."""
        return list(self._sublayers.values())

    # -- the flat dicts -------------------------------------------------------------------
    @property
    def params(self):
        return _FlatView(self._sublayers, "params")

    @params.setter
    def params(self, value):
        self._assign("params", value)

    @property
    def grads(self):
        return _FlatView(self._sublayers, "grads")

    @grads.setter
    def grads(self, value):
        self._assign("grads", value)

    @property
    def state(self):
        return _FlatView(self._sublayers, "state")

    @state.setter
    def state(self, value):
        self._assign("state", value)

    def _assign(self, attr, value):
        view = _FlatView(self._sublayers, attr)
        for k, v in dict(value).items():
            view[k] = v

    @property
    def dtype(self):
        return self._dtype

    @dtype.setter
    def dtype(self, value):
        self._dtype = np.dtype(value)
        for layer in self._sublayers.values():
            self._adopt_dtype(layer)

    # -- weights --------------------------------------------------------------------------
    def get_weights(self):
        """Every parameter, then every state array, as NumPy arrays (the views' order)."""
        B = backend.get()
        return [np.array(B.to_numpy(a)) for view in (self.params, self.state) for a in view.values()]

    def set_weights(self, weights):
        weights = list(weights)
        n_params, n_state = len(self.params), len(self.state)
        if len(weights) != n_params + n_state:
            raise ShapeError(f"layer {self.name!r} expects {n_params + n_state} weight arrays, got {len(weights)}")
        params, state = weights[:n_params], weights[n_params:]
        for layer in self._sublayers.values():
            k, s = len(layer.params), len(getattr(layer, "state", {}))
            layer.set_weights(params[:k] + state[:s])
            params, state = params[k:], state[s:]

    # -- the layer hooks, extended to the sublayers ---------------------------------------
    @contextlib.contextmanager
    def preserved(self):
        with contextlib.ExitStack() as stack:
            stack.enter_context(super().preserved())
            for layer in self._sublayers.values():
                stack.enter_context(layer.preserved())
            yield self

    def release_context(self):
        super().release_context()
        for layer in self._sublayers.values():
            layer.release_context()

    def get_random_state(self):
        """``{slot: state}`` of the sublayers with a random stream of their own, or None."""
        states = {slot: layer.get_random_state() for slot, layer in self._sublayers.items()}
        states = {slot: st for slot, st in states.items() if st is not None}
        return states or None

    def set_random_state(self, state):
        for slot, st in (state or {}).items():
            if slot in self._sublayers:
                self._sublayers[slot].set_random_state(st)
