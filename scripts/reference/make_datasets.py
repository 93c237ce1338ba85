#!/usr/bin/env python3
"""Deterministically generate the small fixture datasets under fixtures/data/.

    python scripts/reference/make_datasets.py            # any Python 3; pandas+pyarrow optional

Files:
    alpaca.json        64 rows {instruction, input, output}; 32 with empty input
    alpaca.jsonl       the same rows, one JSON object per line
    alpaca.parquet     the same rows (only if pandas + pyarrow are importable)
    chat.jsonl         32 rows {"messages": [{role, content}, ...]}: system+user+assistant,
                       every 4th row has a second user/assistant turn
    completion.jsonl   32 rows {"text": ...}
    input_output.jsonl 16 rows {"segments": [{text, label}, ...]} (Axolotl `input_output`),
                       written with the tiny-llama (Llama-3-style) special tokens

Texts are short so that every Alpaca row stays well under 128 tokens with the fixture
tokenizers (the script prints the max lengths when `tokenizers` is importable).
"""

import json
import os
import random
import sys

SEED = 20241128

OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
    ("happy", "sad"), ("open", "closed"), ("light", "dark"), ("old", "young"), ("wet", "dry"),
    ("early", "late"), ("full", "empty"),
]
CAPITALS = [
    ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("Germany", "Berlin"), ("Egypt", "Cairo"), ("Peru", "Lima"), ("Canada", "Ottawa"),
    ("Kenya", "Nairobi"), ("Norway", "Oslo"),
]
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "rabbit", "fox", "owl", "frog", "bear"]
ANIMAL_FACTS = {
    "cat": ["The cat sleeps in the warm sun.", "A cat likes to chase small toys.", "Cats clean their fur every day."],
    "dog": ["The dog runs in the park.", "A dog is a loyal friend.", "Dogs love long walks."],
    "bird": ["The bird sings in the tree.", "A bird builds a nest of sticks.", "Most birds can fly."],
    "fish": ["The fish swims in the river.", "A fish breathes with its gills.", "Some fish live in the sea."],
    "horse": ["The horse eats hay in the barn.", "A horse can run very fast.", "Horses sleep standing up."],
    "rabbit": ["The rabbit hides under the green bush.", "A rabbit has long ears.", "Rabbits eat fresh carrots."],
    "fox": ["A fox is small, quick and clever.", "The fox hunts at night.", "Foxes live in dens."],
    "owl": ["The owl wakes up at night.", "An owl can turn its head far around.", "Owls have big eyes."],
    "frog": ["The frog jumps into the pond.", "A frog starts life as a tadpole.", "Frogs catch flies."],
    "bear": ["The bear sleeps all winter.", "A bear likes honey and fish.", "Bears are strong animals."],
}
EXPLAIN = {
    "the sky is blue": [
        "Sunlight is scattered by the air.",
        "Blue light is scattered the most, so the sky looks blue.",
    ],
    "we need sleep": [
        "Sleep helps the body rest.",
        "It also helps the brain store memories.",
    ],
    "ice floats on water": ["Ice is less dense than liquid water, so it floats."],
    "plants need light": [
        "Plants use light to make their own food.",
        "This process is called photosynthesis.",
    ],
    "we have seasons": [
        "The Earth is tilted.",
        "So each half gets more or less light during the year.",
    ],
    "leaves change color in autumn": [
        "In autumn the green color in leaves breaks down.",
    ],
}
FRUITS = ["apple", "banana", "orange", "pear", "grape", "mango", "cherry", "lemon"]
VEGETABLES = ["carrot", "potato", "onion", "pea", "cabbage", "leek", "bean", "pepper"]
WORDS = ["tree", "apple", "river", "house", "cloud", "stone", "music", "paper", "garden", "window", "yes", "sun"]
PAST = [
    ("I walk to school.", "I walked to school."),
    ("She plays the piano.", "She played the piano."),
    ("We cook dinner together.", "We cooked dinner together."),
    ("The dog barks at the cat.", "The dog barked at the cat."),
    ("They paint the fence.", "They painted the fence."),
    ("He opens the window.", "He opened the window."),
]
STORIES = [
    ("A boy walks in the park. He finds a lost dog.",
     "A boy finds a lost dog."),
    ("The little robot wanted to paint. At last it painted the sea.",
     "A little robot learns to paint."),
    ("It rained all morning. Then the children ran outside to play.",
     "After the rain, the children played outside."),
    ("Anna planted a seed in spring. By summer it was a tall sunflower.",
     "Anna grew a sunflower from a seed."),
]
SYSTEMS = [
    "You are a helpful assistant.",
    "You are a friendly and concise assistant.",
    "You are a patient teacher. Answer in short sentences.",
    "Answer the question in one short sentence.",
]
COMPLETION_SENTENCES = [
    "Once upon a time there was a little robot who wanted to learn how to paint.",
    "The weather today is sunny with a light wind from the west.",
    "Water boils at 100 degrees Celsius and freezes at 0 degrees.",
    "A week has seven days, and a year has twelve months.",
    "The quick brown fox jumps over the lazy dog.",
    "In the morning the town was quiet and the shops were still closed.",
    "The old man sat by the river and watched the boats go by.",
    "Octopuses have three hearts and blue blood.",
    "The children built a small house out of snow.",
    "Every evening the owl flew over the dark forest.",
    "She opened the window and the cold air came in.",
    "The train left the station at seven o'clock.",
]


def task_opposite(rng, with_input):
    w, o = rng.choice(OPPOSITES)
    if with_input:
        return "Give the opposite of the word.", w, f"The opposite of {w} is {o}."
    return f"What is the opposite of {w}?", "", o


def task_add(rng, with_input):
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    if with_input:
        return "Add the two numbers.", f"{a} and {b}", str(a + b)
    return f"What is {a} plus {b}?", "", f"{a} plus {b} is {a + b}."


def task_capital(rng, with_input):
    c, cap = rng.choice(CAPITALS)
    if with_input:
        return "Name the capital city of the country.", c, f"The capital of {c} is {cap}."
    return f"What is the capital of {c}?", "", f"{cap}."


def task_sort(rng, with_input):
    nums = rng.sample(range(1, 40), rng.randint(3, 5))
    s = ", ".join(map(str, nums))
    out = ", ".join(map(str, sorted(nums)))
    if with_input:
        return "Sort the list in ascending order.", s, out
    return f"Sort these numbers from smallest to largest: {s}.", "", out


def task_reverse(rng, with_input):
    w = rng.choice(WORDS)
    if with_input:
        return "Reverse the word.", w, w[::-1]
    return f"Reverse the word {w}.", "", f"The word {w} reversed is {w[::-1]}."


def task_count(rng, with_input):
    w = rng.choice(WORDS)
    if with_input:
        return "Count the letters in the word.", w, f"The word {w} has {len(w)} letters."
    return f"How many letters are in the word {w}?", "", str(len(w))


def task_classify(rng, with_input):
    item = rng.choice(FRUITS + VEGETABLES)
    kind = "fruit" if item in FRUITS else "vegetable"
    art = "An" if item[0] in "aeiou" else "A"
    if with_input:
        return "Classify the item as a fruit or a vegetable.", item, f"{art} {item} is a {kind}."
    return f"Is {item} a fruit or a vegetable?", "", f"It is a {kind}."


def task_even(rng, with_input):
    n = rng.randint(1, 99)
    kind = "even" if n % 2 == 0 else "odd"
    if with_input:
        return "Is the number even or odd?", str(n), f"The number {n} is {kind}."
    return f"Is {n} even or odd?", "", kind.capitalize() + "."


def task_describe(rng, with_input):
    a = rng.choice(ANIMALS)
    k = rng.randint(1, 2)
    facts = rng.sample(ANIMAL_FACTS[a], k)
    if with_input:
        return "Write a short text about the animal.", a, " ".join(facts)
    return f"Write a short sentence about a {a}.", "", " ".join(facts)


def task_explain(rng, with_input):
    topic = rng.choice(sorted(EXPLAIN))
    if with_input:
        return "Explain the fact in simple words.", topic[0].upper() + topic[1:] + ".", " ".join(EXPLAIN[topic])
    return f"Explain why {topic}.", "", " ".join(EXPLAIN[topic])


def task_past(rng, with_input):
    s, p = rng.choice(PAST)
    if with_input:
        return "Rewrite the sentence in the past tense.", s, p
    return f"Rewrite in the past tense: {s}", "", p


def task_summary(rng, with_input):
    story, summ = rng.choice(STORIES)
    if with_input:
        return "Summarize the text in one sentence.", story, summ
    return "Tell me a very short story.", "", story


TASKS = [
    task_opposite, task_add, task_capital, task_sort, task_reverse, task_count,
    task_classify, task_even, task_describe, task_explain, task_past, task_summary,
]


def make_alpaca(rng, n=64):
    rows = []
    for i in range(n):
        with_input = i % 2 == 0
        task = TASKS[(i // 2 + (i % 2) * 5) % len(TASKS)]
        instr, inp, out = task(rng, with_input)
        rows.append({"instruction": instr, "input": inp, "output": out})
    rng.shuffle(rows)
    return rows


def make_chat(rng, n=32):
    rows = []
    for i in range(n):
        msgs = [{"role": "system", "content": SYSTEMS[i % len(SYSTEMS)]}]
        turns = 2 if i % 4 == 3 else 1
        for t in range(turns):
            task = TASKS[(3 * i + 7 * t) % len(TASKS)]
            q, _, a = task(rng, False)
            msgs.append({"role": "user", "content": q})
            msgs.append({"role": "assistant", "content": a})
        rows.append({"messages": msgs})
    return rows


def make_completion(rng, n=32):
    rows = []
    for _ in range(n):
        k = rng.randint(1, 4)
        rows.append({"text": " ".join(rng.sample(COMPLETION_SENTENCES, k))})
    return rows


def make_input_output(rng, n=16):
    rows = []
    for i in range(n):
        q, _, a = TASKS[i % len(TASKS)](rng, False)
        segs = [
            {"text": "<|begin_of_text|>", "label": False},
            {"text": f"Question: {q}\n", "label": False},
            {"text": f"Answer: {a}<|end_of_text|>", "label": True},
        ]
        rows.append({"segments": segs})
    return rows


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    out = os.path.abspath(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "data")
    )
    os.makedirs(out, exist_ok=True)
    alpaca = make_alpaca(random.Random(SEED))
    with open(os.path.join(out, "alpaca.json"), "w", encoding="utf-8") as f:
        json.dump(alpaca, f, indent=1, ensure_ascii=False)
        f.write("\n")
    write_jsonl(os.path.join(out, "alpaca.jsonl"), alpaca)
    write_jsonl(os.path.join(out, "chat.jsonl"), make_chat(random.Random(SEED + 1)))
    write_jsonl(os.path.join(out, "completion.jsonl"), make_completion(random.Random(SEED + 2)))
    write_jsonl(os.path.join(out, "input_output.jsonl"), make_input_output(random.Random(SEED + 3)))
    try:
        import pandas as pd  # noqa: F401
        import pyarrow  # noqa: F401

        pd.DataFrame(alpaca, columns=["instruction", "input", "output"]).to_parquet(
            os.path.join(out, "alpaca.parquet"), index=False
        )
        print("wrote alpaca.parquet")
    except ImportError:
        print("pandas/pyarrow not available: alpaca.parquet skipped")
    n_empty = sum(1 for r in alpaca if not r["input"])
    print(f"alpaca: {len(alpaca)} rows, {n_empty} with empty input")
    # Length report with the fixture tokenizers, if available.
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return
    models = os.path.join(os.path.dirname(out), "models")
    sys_in = (
        "Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
    )
    sys_no = (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n"
    )
    for m in ("tiny-llama", "tiny-qwen2"):
        p = os.path.join(models, m, "tokenizer.json")
        if not os.path.exists(p):
            continue
        tok = Tokenizer.from_file(p)
        lens = []
        for r in alpaca:
            if r["input"]:
                t = sys_in + f"### Instruction:\n{r['instruction']}\n\n### Input:\n{r['input']}\n\n### Response:\n"
            else:
                t = sys_no + f"### Instruction:\n{r['instruction']}\n\n### Response:\n"
            lens.append(len(tok.encode(t + r["output"]).ids) + 1)
        print(f"{m}: alpaca tokens min={min(lens)} max={max(lens)} mean={sum(lens) / len(lens):.1f}")


if __name__ == "__main__":
    main()
