"""CIFAR-100 in torchvision's layout (`cifar-100-python/`): CIFAR-10's reader with the 100 fine classes."""

from cnnlab.data.families.cifar10 import CIFAR10

CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()


class CIFAR100(CIFAR10):
    name = "cifar100"
    all_class_names = tuple(CIFAR100_CLASSES)
    folder = "cifar-100-python"
    files = {"train": ["train"], "test": ["test"]}
    label_key = "fine_labels"
    torchvision_class = "CIFAR100"
