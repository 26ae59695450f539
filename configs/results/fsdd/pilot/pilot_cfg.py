"""Pilot: main-job student size x budget, validation only (seeds 100-102)."""
from configs import fsdd, common

SIZES = {"W4": dict(stem_width=4, widths=(4, 6, 8), strides=(2, 2, 2), stem_stride=2),
         "W8": dict(stem_width=8, widths=(8, 12, 16), strides=(2, 2, 2), stem_stride=2),
         "W16": dict(fsdd.STUDENT)}


def get_config(arg=None):
    a = common.parse_arg(arg, size="W8", steps=800)
    c = fsdd.get_config("seeds=3")
    for s in ("student", "kd"):
        st = c.stages[s]
        st.models.student.kw = SIZES[a.size]
        st.num_steps = a.steps
        st.seed = 100
    c.run = "student,kd"
    return c
