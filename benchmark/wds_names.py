"""The names of CLIP_benchmark's published webdatasets (the hub's clip-benchmark/wds_* repositories), one list
for `run --task wds/<name>` (benchmark.webdatasets) and for reading CLIP_benchmark's result files
(benchmark.interop)."""

SOURCE = ("LAION-AI/CLIP_benchmark@b4b6a33c8dc01fe44acf24f24f71ac7585d52571 benchmark/webdatasets.txt")

# benchmark/webdatasets.txt, in its order
NAMES = (
    "wds/mscoco_captions", "wds/flickr8k", "wds/flickr30k",
    "wds/imagenet1k", "wds/imagenetv2", "wds/imagenet_sketch", "wds/imagenet-a", "wds/imagenet-r", "wds/imagenet-o",
    "wds/objectnet", "wds/fer2013", "wds/voc2007", "wds/voc2007_multilabel", "wds/sun397", "wds/cars",
    "wds/fgvc_aircraft", "wds/mnist", "wds/stl10", "wds/gtsrb", "wds/country211", "wds/renderedsst2",
    "wds/vtab/caltech101", "wds/vtab/cifar10", "wds/vtab/cifar100", "wds/vtab/clevr_count_all",
    "wds/vtab/clevr_closest_object_distance", "wds/vtab/diabetic_retinopathy", "wds/vtab/dmlab",
    "wds/vtab/dsprites_label_orientation", "wds/vtab/dsprites_label_x_position", "wds/vtab/dsprites_label_y_position",
    "wds/vtab/dtd", "wds/vtab/eurosat", "wds/vtab/kitti_closest_vehicle_distance", "wds/vtab/flowers", "wds/vtab/pets",
    "wds/vtab/pcam", "wds/vtab/resisc45", "wds/vtab/smallnorb_label_azimuth", "wds/vtab/smallnorb_label_elevation",
    "wds/vtab/svhn",
)
