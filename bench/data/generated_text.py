"""Generated offline text: the two mini language tasks (E2E-style data-to-text, XSum-style summarisation)
and the pre-training corpus of the tiny GPT-2 / BART in bench/assets.

Everything is a pure function of fixed seeds (numpy only). The tasks are written to disk in their official
file formats (Li & Liang's `src1_*.txt`, the seq2seq `*.source` / `*.target` layout) and then read by the same
readers as the real data. The pre-training corpus shares the tasks' vocabulary (venues, food, prices, towns,
news words) but never their sentence templates, so fine-tuning has something to transfer and something to learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.data.generated import staged_folder

E2E_SIZES = {"train": 600, "valid": 40, "test": 60}  # train: (MR, reference) pairs; valid/test: distinct MRs
XSUM_SIZES = {"train": 400, "val": 40, "test": 60}
E2E_SEED, XSUM_SEED = 201, 202

# ---------------------------------------------------------------- shared vocabulary

# E2E's attributes and value kinds, spelled as in Li & Liang's files (renamed keys, pre-tokenised values).
E2E_KEYS = ("name", "Type", "food", "price", "customer rating", "area", "family friendly", "near")
VENUE_TYPES = ("coffee shop", "pub", "restaurant")
FOODS = ("Chinese", "English", "Fast food", "French", "Indian", "Italian", "Japanese")
PRICES = ("cheap", "moderate", "high", "less than £ 20", "£ 20 - 25", "more than £ 30")
RATINGS = ("low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5")
AREAS = ("city centre", "riverside")

_ONSETS = ("b", "br", "c", "ch", "d", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t", "tr",
           "v", "w")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou")
_CODAS = ("n", "r", "l", "s", "m", "ck", "nd", "x")
FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Ella", "Frank", "Grace", "Harry", "Isla", "Jack", "Kate", "Leo",
               "Maya", "Noah", "Olive", "Peter", "Rosa", "Sam", "Tara", "Will")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
INDUSTRIES = ("food", "building", "software", "clothing", "transport", "energy", "furniture", "printing")
FORMER_USES = ("bank", "post office", "bakery", "cinema", "chapel", "school", "shoe shop", "warehouse")
CAUSES = ("a hospital ward", "a children's charity", "a local food bank", "a cancer charity", "a mountain rescue team",
          "an animal shelter")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def coined_word(rng: np.random.Generator, syllables: tuple[int, int] = (2, 3)) -> str:
    """A capitalised made-up word of 2-3 syllables ('Bramito', 'Tesalor'); the last syllable may close."""
    count = int(rng.integers(syllables[0], syllables[1] + 1))
    word = "".join(_pick(rng, _ONSETS) + _pick(rng, _VOWELS) for _ in range(count))
    if _chance(rng, 0.5):
        word += _pick(rng, _CODAS)
    return word.capitalize()


def venue_name(rng: np.random.Generator) -> str:
    form = int(rng.integers(4))
    if form == 0:
        return "The " + coined_word(rng)
    if form == 1:
        return coined_word(rng, (1, 2)) + " " + coined_word(rng, (2, 2))
    return coined_word(rng)


def near_name(rng: np.random.Generator) -> str:
    """A landmark an E2E venue is near ('Café Trouvik', 'Dainbeck Inn')."""
    return _pick(rng, ("Café {}", "The {}", "{} Inn", "{} House", "{}")).format(coined_word(rng))


def town_name(rng: np.random.Generator) -> str:
    return coined_word(rng, (1, 2)) + _pick(rng, ("ton", "ford", "bury", "ham", "wick", "field", "", ""))


def person_name(rng: np.random.Generator) -> str:
    return _pick(rng, FIRST_NAMES) + " " + coined_word(rng, (2, 2))


def with_article(words: str) -> str:
    """'a pub', 'an Italian restaurant', 'an average customer rating'."""
    return ("an " if words[:1].lower() in "aeiou" else "a ") + words


def tokenise(text: str) -> str:
    """Li & Liang's pre-tokenised style: spaces around punctuation ('family - friendly', 'it 's', 'ends .')."""
    for mark in (",", ".", "!", "?", ";", ":", "'", "£"):
        text = text.replace(mark, f" {mark} ")
    text = text.replace("-", " - ")
    return " ".join(text.split())


# ---------------------------------------------------------------- mini E2E (data-to-text)


def e2e_meaning_representation(rng: np.random.Generator) -> dict[str, str]:
    """name plus 2-7 of E2E's other attributes (E2E MRs have 3-8 attributes)."""
    mr = {"name": venue_name(rng)}
    optional = {"Type": VENUE_TYPES, "food": FOODS, "price": PRICES, "customer rating": RATINGS, "area": AREAS,
                "family friendly": ("yes", "no"), "near": ()}
    count = int(rng.integers(2, 8))
    chosen = set(rng.choice(len(optional), size=count, replace=False).tolist())
    for index, (key, values) in enumerate(optional.items()):
        if index in chosen:
            mr[key] = near_name(rng) if key == "near" else _pick(rng, values)
    return mr


def linearise(mr: dict[str, str]) -> str:
    """'name : The Eagle | Type : coffee shop | ...' in E2E's attribute order."""
    return " | ".join(f"{key} : {mr[key]}" for key in E2E_KEYS if key in mr)


def food_words(food: str) -> str:
    """'Italian food', 'fast food'."""
    return "fast food" if food == "Fast food" else f"{food} food"


def food_adjective(food: str) -> str:
    """'Italian', 'fast food' (as in 'a fast food restaurant')."""
    return "fast food" if food == "Fast food" else food


def _e2e_clause(key: str, value: str, rng: np.random.Generator) -> str:
    """A verb phrase stating one attribute ('serves Italian food', 'is rated 3 out of 5 by customers')."""
    if key == "food":
        return _pick(rng, ("serves {}", "offers {}", "has {} on the menu")).format(food_words(value))
    if key == "price":
        by_word = {"cheap": ("is cheap", "has low prices"), "moderate": ("is moderately priced", "has average prices"),
                   "high": ("is expensive", "has high prices")}
        if value in by_word:
            return _pick(rng, by_word[value])
        return _pick(rng, ("has a price range of {}", "costs {} per person")).format(value)
    if key == "customer rating":
        if "out of" in value:
            return _pick(rng, ("has a customer rating of {}", "is rated {} by customers")).format(value)
        if _chance(rng, 0.5):
            return f"has {with_article(value)} customer rating"
        return f"is rated {value} by customers"
    if key == "area":
        if value == "riverside":
            return _pick(rng, ("is by the riverside", "is located in the riverside area"))
        return _pick(rng, ("is in the city centre", "is located in the city centre"))
    if key == "family friendly":
        if value == "yes":
            return _pick(rng, ("is family - friendly", "is kid friendly", "welcomes children"))
        return _pick(rng, ("is not family - friendly", "does not welcome children", "is not kid friendly"))
    if key == "near":
        return _pick(rng, ("is near {}", "is close to {}", "is located near {}")).format(value)
    if key == "Type":
        return f"is a {value}"
    raise ValueError(f"no clause for {key!r}")


def _join_clauses(clauses: list[str]) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return " , ".join(clauses[:-1]) + " and " + clauses[-1]


def e2e_reference(mr: dict[str, str], rng: np.random.Generator) -> str:
    """One pre-tokenised sentence or two that state every attribute of the MR, from one of five openings."""
    name, rest = mr["name"], dict(mr)
    del rest["name"]
    noun = rest.pop("Type", None) or _pick(rng, ("place", "venue"))
    opening = int(rng.integers(5))
    if opening == 0:  # "X is a cheap Italian restaurant ."
        adjectives = []
        if rest.get("price") in ("cheap", "high"):
            adjectives.append({"cheap": "cheap", "high": "expensive"}[rest.pop("price")])
        if "food" in rest:
            adjectives.append(food_adjective(rest.pop("food")))
        first = f"{name} is " + with_article(" ".join([*adjectives, noun]))
    elif opening == 1 and "area" in rest:  # "In the city centre , there is a pub called X ."
        area = rest.pop("area")
        where = "By the riverside" if area == "riverside" else "In the city centre"
        first = f"{where} , there is a {noun} called {name}"
    elif opening == 2:  # "There is a pub named X near Y ."
        first = f"There is a {noun} named {name}"
        if "near" in rest:
            first += " near " + rest.pop("near")
    elif opening == 3 and "food" in rest:  # "For Japanese food , try X , a coffee shop ."
        first = f"For {food_words(rest.pop('food'))} , try {name} , a {noun}"
    else:  # "X is a pub in the city centre ."
        first = f"{name} is a {noun}"
        if "area" in rest:
            first += " in the city centre" if rest.pop("area") == "city centre" else " by the riverside"
    if not rest:
        return first + " ."
    keys = [key for key in E2E_KEYS if key in rest]
    order = [keys[i] for i in rng.permutation(len(keys))]
    clauses = [_e2e_clause(key, rest[key], rng) for key in order]
    subject = _pick(rng, ("It", f"The {noun}", name))
    if len(clauses) <= 3 or _chance(rng, 0.5):
        return f"{first} . {subject} {_join_clauses(clauses)} ."
    half = len(clauses) // 2
    return f"{first} . {subject} {_join_clauses(clauses[:half])} . It {_join_clauses(clauses[half:])} ."


def e2e_split(rng: np.random.Generator, split: str, seen: set[str]) -> list[tuple[str, str]]:
    """(MR, reference) pairs: train 1-2 references per MR up to the pair count, valid/test 1-3 per MR."""
    pairs: list[tuple[str, str]] = []
    mrs = 0
    while (len(pairs) if split == "train" else mrs) < E2E_SIZES[split]:
        mr = e2e_meaning_representation(rng)
        line = linearise(mr)
        if line in seen:
            continue
        seen.add(line)
        mrs += 1
        count = int(rng.integers(1, 3 if split == "train" else 4))
        references: list[str] = []
        for _ in range(20):
            if len(references) == count:
                break
            reference = e2e_reference(mr, rng)
            if reference not in references:
                references.append(reference)
        pairs.extend((line, reference) for reference in references)
    return pairs[: E2E_SIZES["train"]] if split == "train" else pairs


def prepare_mini_e2e(root: Path) -> None:
    """mini/e2e: src1_{train,valid,test}.txt, lines 'MR||reference', several lines per MR on valid/test."""
    rng = np.random.default_rng(E2E_SEED)
    seen: set[str] = set()
    files = {}
    for split in E2E_SIZES:
        pairs = e2e_split(rng, split, seen)
        files[f"src1_{split}.txt"] = "".join(f"{mr}||{reference}\n" for mr, reference in pairs)
    write_files(root, files)


# ---------------------------------------------------------------- mini XSum (summarisation)


def _money(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 1)


Story = tuple[list[str], list[str], str]  # (sentences the summary needs, in order; background; summary)


def _story_opening(rng: np.random.Generator) -> Story:
    town, owner, food, former = town_name(rng), person_name(rng), _pick(rng, FOODS), _pick(rng, FORMER_USES)
    name, day = venue_name(rng), _pick(rng, DAYS)
    cooking = food_adjective(food)
    key = f"{name}, a new {cooking} restaurant, opened its doors in {town} on {day}."
    building = f"The building was {with_article(former)} for {int(rng.integers(20, 90))} years before it stood empty."
    owned = f"The owner, {owner}, said the town had waited a long time for good {cooking} cooking."
    background = [f"There are {int(rng.integers(12, 40))} tables and {int(rng.integers(4, 20))} staff.",
                  "Parking nearby is limited, and visitors have been asked to come by bus."]
    if _chance(rng, 0.5):  # the summary combines the key fact with one background fact
        summary = f"A former {former} in {town} has reopened as {with_article(cooking)} restaurant."
        return [key, building], [owned, *background], summary
    summary = f"{owner} has opened {with_article(cooking)} restaurant in {town}."
    return [key, owned], [building, *background], summary


def _goal_sentence(rng: np.random.Generator, team: str, goals: int) -> str:
    scorers = [coined_word(rng) for _ in range(goals)]
    minutes = sorted(int(m) for m in rng.choice(np.arange(3, 90), size=goals, replace=False))
    if goals == 0:
        return f"{team} never looked like scoring."
    if goals == 1:
        return f"{scorers[0]} scored for {team} after {minutes[0]} minutes."
    listed = ", ".join(f"{who} ({minute})" for who, minute in zip(scorers[:-1], minutes[:-1], strict=True))
    return f"The goals for {team} came from {listed} and {scorers[-1]} ({minutes[-1]})."


def _story_match(rng: np.random.Generator) -> Story:
    """The final score is never stated: the summary has to count the goals."""
    home_team = f"{town_name(rng)} {_pick(rng, ('United', 'Rovers', 'Town', 'City'))}"
    away_team = f"{town_name(rng)} Athletic"
    home_goals, away_goals = int(rng.integers(0, 4)), int(rng.integers(0, 3))
    if home_goals == away_goals:
        home_goals += 1
    key = f"{home_team} played {away_team} on {_pick(rng, DAYS)} in front of {int(rng.integers(2, 30))},000 fans."
    required = [key, _goal_sentence(rng, home_team, home_goals), _goal_sentence(rng, away_team, away_goals)]
    background = [f"The referee showed {int(rng.integers(2, 6))} yellow cards in a bad-tempered second half.",
                  f"The manager of {home_team}, {person_name(rng)}, said the pitch was in poor condition."]
    winner, loser = (home_team, away_team) if home_goals > away_goals else (away_team, home_team)
    high, low = max(home_goals, away_goals), min(home_goals, away_goals)
    summary = _pick(rng, (f"{winner} beat {loser} {high}-{low}.", f"{loser} lost {high}-{low} to {winner}."))
    return required, background, summary


def _story_results(rng: np.random.Generator) -> Story:
    """Whether profits rose or fell is never stated: the summary has to compare the two figures."""
    company = f"{coined_word(rng)} {_pick(rng, ('Group', 'Holdings', 'Foods', 'Systems', 'Brothers'))}"
    industry, town, boss = _pick(rng, INDUSTRIES), town_name(rng), person_name(rng)
    now, before = _money(rng, 1.0, 30.0), _money(rng, 1.0, 30.0)
    while before == now:  # the summary says "rose" or "fell"
        before = _money(rng, 1.0, 30.0)
    key = (f"{company} made a profit of £{now}m in the year to {_pick(rng, MONTHS)}, compared with £{before}m "
           "a year earlier.")
    based = f"The {industry} firm is based in {town} and employs {int(rng.integers(80, 3000))} people."
    background = [f"Chief executive {boss} thanked staff for their work.",
                  f"Sales in {_pick(rng, ('Europe', 'Asia', 'America'))} grew by {int(rng.integers(2, 30))}%."]
    direction = "rose" if now > before else "fell"
    if _chance(rng, 0.5):
        return [key, based], background, f"Profits at {town} {industry} firm {company} {direction} to £{now}m."
    return [key], [based, *background], f"{company} has reported that its profits {direction} to £{now}m."


def _story_homes(rng: np.random.Generator) -> Story:
    town, homes = town_name(rng), int(rng.integers(4, 90)) * 10
    key = (f"Councillors voted {int(rng.integers(6, 14))} to {int(rng.integers(1, 6))} in favour of building "
           f"{homes} homes on fields next to the river in {town}.")
    background = [f"Some residents had objected, saying the roads around {town} were already too busy.",
                  f"The developer, {coined_word(rng)} Homes, said a third of the houses would be affordable.",
                  f"Work is expected to start in {_pick(rng, MONTHS)}.",
                  "A school and a doctor's surgery are also part of the scheme."]
    summary = _pick(rng, (f"Plans for {homes} new homes in {town} have been approved.",
                          f"Plans for {homes} homes by the river in {town} have been given the go-ahead."))
    return [key], background, summary


def _story_storm(rng: np.random.Generator) -> Story:
    town, homes, day = town_name(rng), int(rng.integers(2, 60)) * 100, _pick(rng, DAYS)
    key = f"About {homes} homes in {town} were left without power after a storm on {day} night."
    background = [f"Winds of up to {int(rng.integers(50, 90))}mph brought down trees across the area.",
                  "Engineers worked through the night to repair damaged lines.",
                  f"A school in {town} stayed closed as a precaution.",
                  f"Power had been restored to most homes by {int(rng.integers(6, 11))} o'clock the next morning."]
    many = "Thousands of" if homes >= 2000 else "Hundreds of"
    summary = _pick(rng, (f"A storm cut power to {homes} homes in {town}.",
                          f"{many} homes in {town} lost power when a storm hit on {day}."))
    return [key], background, summary


def _story_charity(rng: np.random.Generator) -> Story:
    runner, town = person_name(rng), town_name(rng)
    runs, cause, money = int(rng.integers(3, 12)), _pick(rng, CAUSES), int(rng.integers(2, 40)) * 1000
    key = f"{runner}, {int(rng.integers(19, 75))}, from {town}, has run {runs} marathons in {runs} days for {cause}."
    background = [f"So far the challenge has raised £{money:,}.",
                  f"{runner.split()[0]} said the last day was the hardest because of the rain.",
                  f"Friends and family joined the final {int(rng.integers(2, 10))} miles."]
    summary = _pick(rng, (f"A {town} runner has completed {runs} marathons in {runs} days to raise money for {cause}.",
                          f"{runner} has run {runs} marathons in {runs} days for {cause}."))
    return [key], background, summary


STORIES: tuple[Callable[[np.random.Generator], Story], ...] = (
    _story_opening, _story_match, _story_results, _story_homes, _story_storm, _story_charity)


def xsum_example(rng: np.random.Generator) -> tuple[str, str]:
    """A 3-5 sentence document and its one-sentence summary: a paraphrase of the key fact, or an aggregate
    (a match's score from its goals, whether profits rose or fell)."""
    required, background, summary = STORIES[int(rng.integers(len(STORIES)))](rng)
    count = int(rng.integers(max(0, 3 - len(required)), min(len(background), 5 - len(required)) + 1))
    chosen = [background[i] for i in sorted(rng.choice(len(background), size=count, replace=False).tolist())]
    lead = 1 if chosen and _chance(rng, 0.3) else 0  # sometimes the key fact is not the first sentence
    return " ".join([*chosen[:lead], *required, *chosen[lead:]]), summary


def prepare_mini_xsum(root: Path) -> None:
    """mini/xsum: {train,val,test}.{source,target}, one document / summary per line."""
    rng = np.random.default_rng(XSUM_SEED)
    files = {}
    for split, size in XSUM_SIZES.items():
        examples = [xsum_example(rng) for _ in range(size)]
        files[f"{split}.source"] = "".join(document + "\n" for document, _ in examples)
        files[f"{split}.target"] = "".join(summary + "\n" for _, summary in examples)
    write_files(root, files)


# ---------------------------------------------------------------- the pre-training corpus


def _place_description(rng: np.random.Generator) -> list[str]:
    """Guide-book sentences about a town, its river and its places to eat and drink."""
    town, river, venue, other_venue = town_name(rng), coined_word(rng), venue_name(rng), venue_name(rng)
    kind, other, food = _pick(rng, VENUE_TYPES), _pick(rng, VENUE_TYPES), food_words(_pick(rng, FOODS))
    area = _pick(rng, ("the city centre", "the riverside", "the old market square", "the harbour", "the high street"))
    score = f"{int(rng.integers(1, 6))} out of 5" if _chance(rng, 0.5) else f"{int(rng.integers(3, 10))} out of 10"
    options = [
        f"{town} lies on the river {river}, about {int(rng.integers(3, 40))} miles from the coast.",
        f"Most visitors arrive by train and walk down to {area}.",
        f"The station is located a short walk from {area}; there is also a bus every {int(rng.integers(5, 30))} "
        "minutes.",
        f"If you only have one evening in {town}, try the {food} at {venue}.",
        f"The old streets of {area} are full of small shops, {with_article(kind)} or two and "
        f"{with_article(other)} with tables outside.",
        "On summer evenings families sit on the grass by the water and children feed the ducks.",
        f"{venue} has been run by the same family since {int(rng.integers(1890, 2015))}.",
        f"Locals recommend the {food} at {venue}, which changes with the seasons.",
        f"A meal for two costs around £{int(rng.integers(15, 90))}, and a pint is a little cheaper than in the city.",
        f"The rooms upstairs look out over {area} and the {river} bridge.",
        f"Last year readers of the local paper gave {venue} a score of {score}.",
        "Children are welcome until eight o'clock, and dogs are allowed in the garden.",
        f"Walking from the station to the {river} takes about {int(rng.integers(5, 30))} minutes.",
        f"The {kind} next to the {coined_word(rng)} church opens early for breakfast and closes after lunch.",
        f"Prices along the river are higher than elsewhere in {town}, although lunch deals are common.",
        f"Some say the best {food} in the county can be found in a back street of {town}.",
        f"When the {kind} called {other_venue} closed, the whole street seemed quieter.",
        f"Students tend to prefer the cheap places around {area}, where a hot meal is still under £10.",
        f"Tourists often ask where to find {food}, and the answer is usually {venue}.",
        f"The menu is short, the portions are large and nothing costs more than £{int(rng.integers(8, 30))}.",
        f"Parents with young kids like the {kind} by the playground, because it has high chairs and a quiet corner.",
        "Not every place in town is friendly to families; some pubs do not allow children after six.",
        f"Opening a {kind} in {town} is hard, and {int(rng.integers(2, 9))} have closed in the last ten years.",
        f"Visitors who want something expensive book a table at {venue} weeks ahead.",
        f"The moderately priced cafés near {area} are busy at lunchtime with office workers.",
        f"Online, customers rate {other_venue} highly for its staff but poorly for its slow kitchen.",
        "The city centre has more restaurants than the riverside, but the riverside has the better views.",
        f"A local guide lists {venue} among the {int(rng.integers(3, 20))} best places to eat in {town}.",
    ]
    return _draw(rng, options, 2, 5)


def _news_item(rng: np.random.Generator) -> list[str]:
    """Short news sentences: councils, businesses, sport, weather, charities."""
    town, person, company = town_name(rng), person_name(rng), f"{coined_word(rng)} {_pick(rng, ('Group', 'Foods'))}"
    team = f"{town_name(rng)} {_pick(rng, ('United', 'Rovers', 'Town', 'City', 'Athletic'))}"
    rival = f"{town_name(rng)} {_pick(rng, ('United', 'Rovers', 'Town', 'City', 'Athletic'))}"
    day, month = _pick(rng, DAYS), _pick(rng, MONTHS)
    options = [
        f"The council in {town} will decide next {month} whether to close the public library.",
        f"{person} has been named the new head teacher of {town} High School.",
        f"Shares in {company} fell {int(rng.integers(2, 20))}% after it warned that sales were slowing.",
        f"{team} have signed the striker {person} on a {int(rng.integers(1, 4))}-year contract.",
        f"Police in {town} are asking for witnesses after a van was stolen on {day}.",
        "Heavy rain is expected across the north this week, and rivers could rise quickly.",
        f"The {_pick(rng, INDUSTRIES)} company {company} is to open a factory in {town}, creating "
        f"{int(rng.integers(20, 500))} jobs.",
        f"A report says {int(rng.integers(10, 60))}% of small shops in {town} struggled to pay their bills last year.",
        f"Tickets for the festival in {town} sold out within {int(rng.integers(2, 48))} hours.",
        f"{person} told reporters that the decision was wrong and would be challenged.",
        f"The bridge over the river {coined_word(rng)} will be closed for repairs until {month}.",
        f"Fans of {team} waited in the cold for hours to meet the players.",
        f"Train services between {town} and {town_name(rng)} were cancelled because of a signal fault.",
        f"The hospital in {town} needs £{int(rng.integers(1, 50))}m to replace its oldest buildings.",
        f"Volunteers collected {int(rng.integers(2, 90))} bags of rubbish from the beach at {town} on {day}.",
        f"{rival} have not won away from home since {month}, and their coach is under pressure.",
        f"A late penalty gave {team} a draw against {rival} last season, and the two clubs meet again soon.",
        f"{company} expects its income to grow next year, helped by new shops in {town}.",
        f"Last winter a storm brought down power lines near {town}, and some farms waited days for repairs.",
        f"Residents in {town} say new houses should not be built until the roads are improved.",
        f"The mayor, {person}, promised to spend more on parks and less on offices.",
        f"Runners of all ages took part in the {town} half marathon, raising money for local charities.",
        f"The price of bread has risen by {int(rng.integers(3, 25))}% in a year, according to a survey.",
        f"Workers at {company} will get a pay rise of {int(rng.integers(2, 9))}% from {month}.",
        f"More than {int(rng.integers(2, 90))},000 people watched the final, a record for the ground.",
        f"Firefighters were called to a kitchen fire at a restaurant in {town} early on {day}.",
    ]
    return _draw(rng, options, 2, 5)


# A small phrase grammar over the tasks' vocabulary: sentences with varied structure, so that a model learns
# English-like word statistics rather than a few dozen memorised templates.
_NOUNS = (
    ("restaurant", "restaurants"), ("pub", "pubs"), ("coffee shop", "coffee shops"), ("venue", "venues"),
    ("place", "places"), ("café", "cafés"), ("bakery", "bakeries"), ("bank", "banks"), ("cinema", "cinemas"),
    ("chapel", "chapels"), ("school", "schools"), ("post office", "post offices"), ("shoe shop", "shoe shops"),
    ("warehouse", "warehouses"), ("hotel", "hotels"), ("market", "markets"), ("bridge", "bridges"),
    ("river", "rivers"), ("street", "streets"), ("park", "parks"), ("station", "stations"), ("house", "houses"),
    ("home", "homes"), ("field", "fields"), ("town", "towns"), ("village", "villages"), ("area", "areas"),
    ("table", "tables"), ("menu", "menus"), ("meal", "meals"), ("dish", "dishes"), ("price", "prices"),
    ("price range", "price ranges"), ("rating", "ratings"), ("customer rating", "customer ratings"),
    ("review", "reviews"), ("customer", "customers"), ("family", "families"), ("child", "children"),
    ("kid", "kids"), ("visitor", "visitors"), ("resident", "residents"), ("owner", "owners"),
    ("manager", "managers"), ("worker", "workers"), ("engineer", "engineers"), ("player", "players"),
    ("fan", "fans"), ("team", "teams"), ("match", "matches"), ("goal", "goals"), ("referee", "referees"),
    ("council", "councils"), ("councillor", "councillors"), ("plan", "plans"), ("scheme", "schemes"),
    ("road", "roads"), ("storm", "storms"), ("tree", "trees"), ("power line", "power lines"), ("firm", "firms"),
    ("company", "companies"), ("profit", "profits"), ("sale", "sales"), ("job", "jobs"), ("runner", "runners"),
    ("marathon", "marathons"), ("charity", "charities"), ("hospital", "hospitals"), ("ward", "wards"),
    ("shelter", "shelters"), ("day", "days"), ("night", "nights"), ("week", "weeks"), ("year", "years"),
    ("view", "views"), ("garden", "gardens"), ("kitchen", "kitchens"), ("door", "doors"),
    ("building", "buildings"), ("report", "reports"), ("survey", "surveys"), ("festival", "festivals"),
    ("ticket", "tickets"), ("train", "trains"), ("bus", "buses"), ("mayor", "mayors"),
    ("developer", "developers"), ("doctor", "doctors"), ("surgery", "surgeries"), ("chef", "chefs"),
    ("dinner", "dinners"), ("breakfast", "breakfasts"), ("drink", "drinks"), ("crowd", "crowds"),
    ("food", "food"), ("cooking", "cooking"), ("service", "service"), ("music", "music"), ("coffee", "coffee"),
)
_ADJECTIVES = (
    "cheap", "expensive", "moderately priced", "high", "low", "average", "family-friendly", "kid friendly",
    "child friendly", "popular", "quiet", "busy", "new", "old", "small", "large", "local", "good", "bad", "poor",
    "strong", "long", "short", "early", "late", "friendly", "famous", "fresh", "hot", "cold", "empty", "full",
    "affordable", "damaged", "former", "nearby", "Italian", "French", "English", "Chinese", "Indian", "Japanese",
    "riverside", "central", "modern", "traditional", "simple", "delicious", "wet", "windy", "happy", "angry",
    "second", "third", "final", "best", "worst", "open", "closed", "fast food", "high-priced", "low-priced",
)
_VERBS = (  # (third person singular present, plural present, past)
    ("serves", "serve", "served"), ("offers", "offer", "offered"), ("welcomes", "welcome", "welcomed"),
    ("opens", "open", "opened"), ("closes", "close", "closed"), ("visits", "visit", "visited"),
    ("praises", "praise", "praised"), ("rates", "rate", "rated"), ("recommends", "recommend", "recommended"),
    ("runs", "run", "ran"), ("builds", "build", "built"), ("sells", "sell", "sold"), ("buys", "buy", "bought"),
    ("beats", "beat", "beat"), ("wins", "win", "won"), ("loses", "lose", "lost"), ("plays", "play", "played"),
    ("hits", "hit", "hit"), ("cuts", "cut", "cut"), ("repairs", "repair", "repaired"),
    ("approves", "approve", "approved"), ("rejects", "reject", "rejected"), ("raises", "raise", "raised"),
    ("reports", "report", "reported"), ("employs", "employ", "employed"), ("hires", "hire", "hired"),
    ("supports", "support", "supported"), ("needs", "need", "needed"), ("wants", "want", "wanted"),
    ("likes", "like", "liked"), ("finds", "find", "found"), ("sees", "see", "saw"),
    ("takes over", "take over", "took over"), ("joins", "join", "joined"), ("completes", "complete", "completed"),
    ("reopens", "reopen", "reopened"), ("damages", "damage", "damaged"), ("expects", "expect", "expected"),
    ("describes", "describe", "described"), ("chooses", "choose", "chose"), ("enjoys", "enjoy", "enjoyed"),
    ("avoids", "avoid", "avoided"), ("leaves", "leave", "left"), ("thanks", "thank", "thanked"),
    ("has", "have", "had"), ("makes", "make", "made"), ("shows", "show", "showed"), ("gives", "give", "gave"),
    ("keeps", "keep", "kept"), ("moves", "move", "moved"), ("looks after", "look after", "looked after"),
)
_INTRANSITIVE = (
    ("grows", "grow", "grew"), ("rises", "rise", "rose"), ("falls", "fall", "fell"), ("arrives", "arrive", "arrived"),
    ("waits", "wait", "waited"), ("stays", "stay", "stayed"), ("agrees", "agree", "agreed"),
    ("objects", "object", "objected"), ("complains", "complain", "complained"), ("returns", "return", "returned"),
    ("opens", "open", "opened"), ("closes", "close", "closed"), ("scores", "score", "scored"),
    ("works", "work", "worked"), ("comes", "come", "came"), ("goes", "go", "went"), ("starts", "start", "started"),
)
_PREPOSITIONS = ("in", "near", "by", "at", "on", "for", "with", "from", "close to", "next to", "after", "before",
                 "behind", "across from", "along", "outside", "inside", "without", "under", "over")
_TIMES = ("on {day}", "in {month}", "last year", "last week", "this year", "every morning", "at night",
          "for {n} years", "after {n} minutes", "for the first time", "once again", "so far", "in the end",
          "the next day", "earlier than planned", "at the start", "too early", "recently", "for a long time",
          "as a precaution", "despite the rain", "in poor weather", "at lunchtime", "in the evening", "also")
_DETERMINERS = {"singular": ("the", "the", "the", "a", "a", "this", "that", "every", "its", "their", "our"),
                "plural": ("the", "the", "some", "many", "these", "those", "their", "most", "two", "three", "{n}")}


def _noun_phrase(rng: np.random.Generator, depth: int = 0, subject: bool = False) -> tuple[str, bool]:
    """(noun phrase, is plural): a name, a pronoun (subjects only), or determiner + 0-2 adjectives + noun
    (+ a prepositional phrase)."""
    roll = rng.random()
    if roll < 0.15:
        make_name = (venue_name, person_name, town_name)[int(rng.integers(3))]
        return make_name(rng), False
    if subject and roll < 0.22:
        pronoun = _pick(rng, ("it", "they", "he", "she", "we", "you"))
        return pronoun, pronoun in ("they", "we", "you")
    plural = _chance(rng, 0.4)
    noun = _NOUNS[int(rng.integers(len(_NOUNS)))][1 if plural else 0]
    adjectives = [_pick(rng, _ADJECTIVES) for _ in range(int(rng.choice(3, p=[0.45, 0.4, 0.15])))]
    determiner = _pick(rng, _DETERMINERS["plural" if plural else "singular"]).format(n=int(rng.integers(4, 200)))
    words = " ".join([*adjectives, noun])
    phrase = with_article(words) if determiner == "a" else f"{determiner} {words}"
    if depth == 0:
        roll = rng.random()
        if roll < 0.2:
            phrase += " " + _prepositional_phrase(rng)
        elif roll < 0.28:
            make_name = (venue_name, town_name)[int(rng.integers(2))]
            phrase += f" {_pick(rng, ('called', 'named', 'known as'))} {make_name(rng)}"
        elif roll < 0.34:
            phrase += f" {_pick(rng, ('that', 'which', 'who'))} {_predicate(rng, plural, _chance(rng, 0.5))}"
    return phrase, plural


def _prepositional_phrase(rng: np.random.Generator) -> str:
    return f"{_pick(rng, _PREPOSITIONS)} {_noun_phrase(rng, depth=1)[0]}"


def _time(rng: np.random.Generator) -> str:
    return _pick(rng, _TIMES).format(day=_pick(rng, DAYS), month=_pick(rng, MONTHS), n=int(rng.integers(2, 60)))


def _verb(forms: tuple[str, str, str], plural: bool, past: bool) -> str:
    return forms[2] if past else forms[1 if plural else 0]


def _predicate(rng: np.random.Generator, plural: bool, past: bool) -> str:
    """A verb phrase agreeing with its subject: transitive, intransitive, copula + adjectives or place, passive."""
    be = ("were" if plural else "was") if past else ("are" if plural else "is")
    form = int(rng.choice(5, p=[0.4, 0.15, 0.2, 0.15, 0.1]))
    if form == 0:
        predicate = f"{_verb(_VERBS[int(rng.integers(len(_VERBS)))], plural, past)} {_noun_phrase(rng)[0]}"
    elif form == 1:
        predicate = _verb(_INTRANSITIVE[int(rng.integers(len(_INTRANSITIVE)))], plural, past)
    elif form == 2:
        adjectives = [_pick(rng, _ADJECTIVES) for _ in range(int(rng.integers(1, 3)))]
        predicate = f"{be} {_pick(rng, ('', '', 'very ', 'not ', 'quite '))}{' and '.join(adjectives)}"
    elif form == 3:
        predicate = f"{be} {_pick(rng, ('', 'located ', 'still ', 'now ', 'not '))}{_prepositional_phrase(rng)}"
    else:
        predicate = f"{be} {_VERBS[int(rng.integers(len(_VERBS)))][2]} by {_noun_phrase(rng)[0]}"
    if _chance(rng, 0.3):
        predicate += " " + _prepositional_phrase(rng)
    return predicate


def _clause(rng: np.random.Generator, past: bool) -> str:
    """Subject + one to three coordinated predicates (+ a time), with subject-verb agreement."""
    subject, plural = _noun_phrase(rng, subject=True)
    count = int(rng.choice(3, p=[0.55, 0.3, 0.15])) + 1
    predicates = [_predicate(rng, plural, past) for _ in range(count)]
    text = f"{subject} {_join_clauses(predicates) if count > 1 else predicates[0]}".replace(" , ", ", ")
    if _chance(rng, 0.25):
        text += " " + _time(rng)
    return text


def _loose_sentence(rng: np.random.Generator) -> str:
    """One sentence of the phrase grammar: a clause, two coordinated clauses, reported speech, a fronted time,
    or an existential."""
    past = _chance(rng, 0.5)
    form = int(rng.choice(5, p=[0.45, 0.15, 0.15, 0.1, 0.15]))
    if form == 0:
        text = _clause(rng, past)
    elif form == 1:
        text = f"{_clause(rng, past)}, {_pick(rng, ('and', 'but', 'so', 'while'))} {_clause(rng, past)}"
    elif form == 2:
        subject, plural = _noun_phrase(rng, subject=True)
        said = _verb(_pick_forms(rng), plural, past)
        text = f"{subject} {said} that {_clause(rng, past)}"
    elif form == 3:
        text = f"{_time(rng)}, {_clause(rng, past)}"
    else:
        thing, plural = _noun_phrase(rng, depth=1)
        be = ("were" if plural else "was") if past else ("are" if plural else "is")
        text = f"there {be} {thing} {_prepositional_phrase(rng)}"
    return text[0].upper() + text[1:] + "."


def _pick_forms(rng: np.random.Generator) -> tuple[str, str, str]:
    options = (("says", "say", "said"), ("thinks", "think", "thought"), ("reports", "report", "reported"),
               ("believes", "believe", "believed"), ("hopes", "hope", "hoped"))
    return options[int(rng.integers(len(options)))]


def _draw(rng: np.random.Generator, options: list[str], low: int, high: int) -> list[str]:
    count = int(rng.integers(low, high + 1))
    return [options[i] for i in rng.choice(len(options), size=count, replace=False).tolist()]


def pretraining_corpus(n: int, seed: int) -> list[str]:
    """n short paragraphs (place descriptions or news items, 2-5 sentences), half of them in the pre-tokenised
    style of E2E; a pure function of (n, seed). Never uses the tasks' templates."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        topical = _place_description(rng) if _chance(rng, 0.5) else _news_item(rng)
        sentences = [_loose_sentence(rng) for _ in range(int(rng.integers(2, 5)))]
        for sentence in topical[: int(rng.integers(0, 3))]:
            sentences.insert(int(rng.integers(len(sentences) + 1)), sentence)
        text = " ".join(sentences)
        texts.append(tokenise(text) if _chance(rng, 0.5) else text)
    return texts


# ---------------------------------------------------------------- writing a task folder


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write root/<name> for each file, atomically, unless root/.complete exists."""
    with staged_folder(root) as staging:
        if staging is None:
            return
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")


TASK_PREPARERS: dict[str, Callable[[Path], None]] = {"e2e": prepare_mini_e2e, "xsum": prepare_mini_xsum}
