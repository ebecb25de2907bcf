"""core.frozen.builder: a positional constructor whose results cannot be told apart from the
class's own, for every frozen slotted dataclass in core.events, and that refuses classes where
a bare set of fields would skip what ``__init__`` does."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from datetime import datetime, timezone

import pytest

import core.events as events
from core.events import ApiError, DeliveryState, DeliveryStatus, InboundMessage, MessageKind
from core.frozen import builder

AT = datetime(2026, 1, 2, 8, 0, tzinfo=timezone.utc)
EVENT_CLASSES = [cls for cls in vars(events).values()
                 if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == events.__name__]

MESSAGE = dict(channel="106000000000002", message_id="wamid.A", timestamp=AT, kind=MessageKind.TEXT,
               wa_id="15550002222", user_id=None, username=None, profile_name="Ana", text="hi", reply_id=None,
               context_message_id="wamid.PREV", media_id=None, from_ad=True, wire_type="text",
               errors=(ApiError(code=131047, title="Re-engagement message"),), raw={"id": "wamid.A"})
STATUS = dict(channel="106000000000002", message_id="wamid.B", state=DeliveryState.FAILED, timestamp=AT,
              recipient="15550002222", recipient_user_id=None, errors=(), pricing_category="marketing",
              callback_data="outbox:7", raw={"id": "wamid.B"})


@pytest.mark.parametrize("cls, values", [(InboundMessage, MESSAGE), (DeliveryStatus, STATUS)],
                         ids=["InboundMessage", "DeliveryStatus"])
def test_built_values_are_the_classes_own(cls, values):
    made, built = cls(**values), builder(cls, " ".join(values))(*values.values())
    assert type(built) is cls
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert all(getattr(built, name) is value for name, value in values.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.channel = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.channel
    assert pickle.loads(pickle.dumps(built)) == made
    assert copy.deepcopy(built) == made
    assert dataclasses.replace(built, channel="other") == dataclasses.replace(made, channel="other")
    assert dataclasses.asdict(built) == dataclasses.asdict(made)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_core_event_can_have_a_builder_taking_every_field(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    build = builder(cls, " ".join(names))
    params = inspect.signature(build).parameters
    assert list(params) == names
    assert all(p.default is inspect.Parameter.empty for p in params.values())  # nothing left unset
    with pytest.raises(TypeError):
        build(*range(len(names) - 1))


def test_refuses_classes_whose_init_does_more_or_whose_layout_differs():
    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self):
            if self.a < 0:
                raise ValueError("negative")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived:
        a: int
        b: list = dataclasses.field(default_factory=list, init=False)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Child(Base):
        b: int

    for cls, fields in ((Mutable, "a"), (NoSlots, "a"), (Checked, "a"), (Derived, "a b"), (Child, "a b"), (dict, "")):
        with pytest.raises(TypeError):
            builder(cls, fields)


def test_the_caller_must_name_the_fields_in_the_classes_order():
    order = "channel message_id state timestamp recipient recipient_user_id errors pricing_category callback_data raw"
    assert builder(DeliveryStatus, order)
    for wrong in (order.replace("recipient recipient_user_id", "recipient_user_id recipient"),  # moved
                  order.replace(" raw", ""),  # one missing (say, added to the class since)
                  order + " extra"):
        with pytest.raises(TypeError, match="fields are now"):
            builder(DeliveryStatus, wrong)
