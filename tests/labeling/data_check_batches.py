"""Batches for the data-quality check tests: normal ones that vary (a field whose missing share
swings from batch to batch, a numeric field with noise, a class mix that wobbles) and a shifted one."""

import random

LABELS = ("pos", "neg", "neu")


def batch_rows(seed: int, n: int = 200, *, shifted: bool = False, prefix: str = "b") -> list[dict]:
    rng = random.Random(seed)
    note_missing = rng.uniform(0.0, 0.4)  # this field always varies: it must not alert
    rows = []
    for i in range(n):
        payload = {
            "text": "ticket " + "x" * rng.randint(5, 60),
            "channel": rng.choice(["email", "chat", "phone"]),
            "amount": rng.gauss(100, 10),
            "note": None if rng.random() < note_missing else "n",
            "country": rng.choice(["us", "de", "fr"]),
        }
        if shifted:
            del payload["country"]  # a field going missing
            if rng.random() < 0.3:
                payload["channel"] = "fax"  # a new category with a material share
            payload["amount"] = rng.gauss(250, 10)  # a shifted numeric field
        p = [rng.random() + 0.2 for _ in LABELS]
        total = sum(p)
        probs = {k: v / total for k, v in zip(LABELS, p)}
        rows.append(
            {
                "external_id": f"{prefix}{seed}-{i}",
                "payload": payload,
                "prediction": {"model_version": "m1", "label": max(probs, key=probs.get), "probabilities": probs},
            }
        )
    return rows


SHIFTED_CHECKS = {("country", "missing_field"), ("channel", "category_shift"), ("amount", "numeric_shift")}
