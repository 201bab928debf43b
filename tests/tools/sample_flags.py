"""Whether a fragment's first sample is a sync sample, as ISO/IEC 14496-12
8.8.8 orders the sources of its flags: the trun's first_sample_flags, then
the trun's per-sample flags, then the tfhd's default_sample_flags. None when
none of them is present (the trex default is not consulted: unknown)."""

from pymp4.util import BoxUtil

NON_SYNC = 0x00010000  # sample_is_non_sync_sample in a raw 32-bit sample_flags


def first_sample_sync(moof):
    trun = next(BoxUtil.find(moof, b"trun"))
    if not trun.sample_count:
        return None
    if trun.first_sample_flags is not None:
        return not trun.first_sample_flags & NON_SYNC
    flags = trun.sample_info[0].sample_flags
    if flags is None:
        tfhd = next(BoxUtil.find(moof, b"tfhd"))
        flags = tfhd.default_sample_flags
    if flags is None:
        return None
    return not flags.sample_is_non_sync_sample
