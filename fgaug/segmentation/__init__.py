"""The probe segmenter: a small network trained on photo/label pairs, used to judge samples
(label consistency), to write ignore maps, and as the augmentation protocol's probe.
"""
