"""Shared data for the hallucination tests: real captions, incl. the paper's Figure 4 and 5 examples."""

import pytest

# Paper Figure 4 (prompt beautification outputs) and Figure 5 (HDPO captions, ellipses removed).
PAPER_CAPTIONS = [
    "In the video, a middle-aged man is seen shopping in a well-lit grocery store. The man is wearing a blue "
    "shirt and khaki pants, and he has a black bag slung over his shoulder. He is browsing through the produce "
    "section, carefully examining the fresh fruits and vegetables. The store is clean and organized, with a "
    "variety of items neatly arranged on the shelves. The lighting is bright, highlighting the vibrant colors of "
    "the produce. The man appears to be alone in the store, and he seems to be taking his time to make sure he "
    "selects the best quality items. The video captures the man's movements as he walks around the store, "
    "reaching out to touch the items on the shelves. The camera angle is from the side of the store, providing a "
    "clear view of the man and his surroundings. The video has a calm and relaxed atmosphere, with no other "
    "customers visible in the store.",
    "In this video, a small, adorable dog is the main subject. The dog appears to be a mixed breed with a white "
    "and brown coat. It has a playful and curious demeanor as it explores its surroundings. The dog is seen "
    "running around a park, sniffing at various objects, and interacting with other animals. The park is lush and "
    "green, with plenty of trees and grass for the dog to explore. The weather is sunny and warm, and the sky is "
    "clear blue. The video is shot from a first-person perspective, giving the viewer a sense of being in the "
    "park with the dog. The camera moves smoothly, following the dog's movements and capturing its playful "
    "antics. The video is shot in high definition, with vibrant colors and sharp details. Overall, the video is a "
    "delightful and heartwarming depiction of a day in the life of a playful little dog.",
    "The video opens with a scene of two men walking side by side down a hallway. The man on the left is dressed "
    "in a dark suit and tie. As they walk, they pass by several other men who are standing in the hallway, "
    "dressed in suits and uniforms. The man on the left seems to be checking his watch, while the man on the "
    "right is possibly holding a document or a device in his hands. The video ends with the two men seemingly "
    "still talking in the hallway.",
    "In the video, a man and a woman engaged in a transaction or a conversation. The man is standing and appears "
    "to be handing over a card or a piece of paper to the woman, who seems to be an employee or a vendor. The "
    "man is wearing a black coat, and the woman is dressed in a red top and is surrounded by an array of items "
    "that are likely for sale or display, as suggested by the numerous mannequins and garments in the "
    "background. There are no other customers visible in the immediate vicinity of the man and woman.",
]

OWN_CAPTIONS = [
    "Two boys are throwing a white ball to the left.",
    "A woman in a red dress rides a bicycle down a busy street while three dogs run beside her.",
    "An orange cat jumps onto a wooden table and knocks over a cup of coffee.",
    "A dozen children sit on the grass in a park, eating sandwiches and drinking juice.",
    "The camera slowly pans to the right, revealing a green tractor driving across a wide field.",
    "A chef in a white apron cuts carrots in a bright kitchen and looks up at the camera.",
    "Five horses gallop along the beach as waves crash on the shore under a gray sky.",
    "A girl waves at a passing train from a bridge above the river.",
    "Two cars drive north on a highway at night, their headlights glowing.",
    "An old man holds an umbrella and walks slowly down the stairs.",
    "A little dog.",
    "A man is shopping.",
]


@pytest.fixture(scope="session")
def captions() -> list[str]:
    return PAPER_CAPTIONS + OWN_CAPTIONS


@pytest.fixture(scope="session")
def nlp():
    from engine.hallucination.text import get_nlp

    return get_nlp()
