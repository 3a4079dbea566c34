#!/usr/bin/env python3
"""Write lmforge's bundled datasets from the hand-written fact tables in this file.

Everything under src/lmforge/assets/datasets/ comes from here: the documents of the
fictional company Brightnest Home (policies, products, FAQ, troubleshooting) and the
datasets built on the same facts (customer-service dialogs and held-out questions,
product reviews, domain text, a numeric property, labeled retrieval queries). The documents
and the dialogs read the same tables, so a fact changed here changes everywhere at once.

    python scripts/make_datasets.py               # rewrite the committed files
    python scripts/make_datasets.py --out /tmp/d  # write them elsewhere

Standard library only and seeded, so every run writes byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SEED = 1729
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "lmforge" / "assets" / "datasets"
SPLITS = ("train", "validation", "test")

# ---------------------------------------------------------------------------------------
# The company: one table of facts that the documents and every dataset read.
# ---------------------------------------------------------------------------------------

COMPANY = "Brightnest Home"
ASSISTANT = "Nessa"
SITE = "brightnesthome.com"
EMAIL = "support@brightnesthome.com"
PHONE = "1-800-555-0142"
WEEKDAY_HOURS = "Monday to Friday, 8 a.m. to 8 p.m. Eastern Time"
SATURDAY_HOURS = "Saturday, 9 a.m. to 5 p.m. Eastern Time"
RETURN_DAYS = 45
RETURN_FEE = "$6.95"
FREE_SHIPPING_MIN = 75
PRICE_ADJUST_DAYS = 14

SYSTEM_PROMPT = (
    f"You are {ASSISTANT}, the customer-service assistant of {COMPANY}, a smart-home devices "
    f"retailer. Answer briefly and politely, using {COMPANY}'s policies and product facts."
)

WARRANTY = {
    "Climate & Sensors": "3 years",
    "Security": "2 years",
    "Lighting & Power": "1 year",
    "Hub & Audio": "18 months",
}
WARRANTY_MONTHS = {
    "Climate & Sensors": 36,
    "Security": 24,
    "Lighting & Power": 12,
    "Hub & Audio": 18,
}

# Sentences the policy documents and the assistant's answers share word for word.
RETURN_RULE = f"Brightnest accepts returns within {RETURN_DAYS} days of delivery"
RETURN_CONDITION = (
    "Please send it back in its original packaging with all accessories and manuals, and "
    "remove it from the Brightnest app (factory reset) first."
)
RETURN_LABEL = (
    f"Return labels are free for defective, damaged or wrong items; for any other return a "
    f"{RETURN_FEE} return shipping fee is deducted from your refund."
)
REFUND_TIMING = (
    "Refunds go to your original payment method within 5 business days after the return "
    "reaches our warehouse, and your bank may take 3 to 5 more business days to show it."
)
STORE_CREDIT = (
    "If you choose store credit instead of a refund, you get a 10% bonus, and the credit is "
    "added to your account within 1 business day of the return arriving."
)
SHIPPING_OPTIONS = (
    f"Standard shipping takes 3 to 5 business days and costs $5.99 (free on orders of "
    f"${FREE_SHIPPING_MIN} or more), Expedited takes 2 business days for $12.99, and "
    f"Overnight arrives the next business day for $24.99."
)
SUPPORT_HOURS = f"{WEEKDAY_HOURS}, and {SATURDAY_HOURS}"
CAREPLUS = (
    "CarePlus extends the standard warranty by 2 years and adds accidental damage coverage "
    "for $29 per device, and you can buy it within 60 days of delivery."
)
PROTECT = (
    "Brightnest Protect costs $3.99 per month per device and adds 30 days of cloud video "
    "history plus person and package detection."
)
PROTECT_PLUS = "Protect Plus covers unlimited devices for $9.99 per month."
REWARDS = (
    "Brightnest Rewards is free to join: you earn 1 point for every $1 you spend, and every "
    "100 points is worth $5 off at checkout."
)
GOLD = (
    "Members who earn 1,000 points in a calendar year reach Gold status, which brings free "
    "Expedited shipping on every order and early access to sales."
)
PASSWORD_RESET = (
    f"Choose Forgot password? on the sign-in page or go to {SITE}/reset, and we'll email you "
    "a reset link that is valid for 30 minutes."
)
LOCKOUT = "After 5 failed sign-in attempts, an account is locked for 15 minutes."


@dataclass(frozen=True)
class Issue:
    """A common problem with one product and the fix support gives for it."""

    title: str
    symptoms: tuple[str, ...]  # verb phrases: "My Aura Thermostat <symptom>."
    fix: str


@dataclass(frozen=True)
class Product:
    """One product as the documents describe it and the datasets talk about it."""

    name: str
    short: str  # what a customer calls it: "thermostat", "smart lock"
    line: str
    price: str
    pack: str  # a multipack offer, or ""
    summary: str
    connectivity: str
    power: str
    features: str
    hub: str  # whether it needs the Hub Mini; "" for the hub itself
    reset: str
    issues: tuple[Issue, ...]
    extra: tuple[tuple[tuple[str, ...], str], ...]  # product questions: (phrasings, answer)
    install: tuple[str, ...]
    release_items: tuple[str, ...]
    review_pos: tuple[str, ...]
    review_neg: tuple[str, ...]
    review_neu: tuple[str, ...]

    @property
    def warranty(self) -> str:
        return WARRANTY[self.line]

    @property
    def warranty_months(self) -> int:
        return WARRANTY_MONTHS[self.line]

    @property
    def price_value(self) -> float:
        return float(self.price.lstrip("$"))

    @property
    def a_name(self) -> str:
        return ("an " if self.name[0] in "AEIOU" else "a ") + self.name


PRODUCTS: tuple[Product, ...] = (
    Product(
        name="Brightnest Hub Mini",
        short="hub",
        line="Hub & Audio",
        price="$79",
        pack="",
        summary=(
            "The Brightnest Hub Mini is the small controller that ties Brightnest devices "
            "together and runs automations locally, even when the internet is down."
        ),
        connectivity=(
            "The Hub Mini connects to your router over Wi-Fi (2.4 GHz or 5 GHz) or its "
            "Ethernet port, and talks to devices over Zigbee 3.0, Thread and Bluetooth LE."
        ),
        power=(
            "It runs on the included USB-C power adapter, and its backup battery keeps it "
            "running for up to 4 hours during a power cut."
        ),
        features=(
            "It is a Matter controller that works with Amazon Alexa, Google Home and Apple "
            "Home, and it can manage up to 150 devices."
        ),
        hub="",
        reset=(
            "To factory reset the Hub Mini, press and hold the pinhole reset button on the "
            "bottom for 10 seconds until the light ring flashes white."
        ),
        issues=(
            Issue(
                "Hub Mini is offline or its light ring pulses amber",
                (
                    "shows as offline in the app",
                    "has a pulsing amber light",
                    "keeps dropping offline",
                ),
                "A pulsing amber ring means the Hub Mini has no internet connection. Restart "
                "your router, unplug the hub for 30 seconds and plug it back in, or connect it "
                "with an Ethernet cable to rule out Wi-Fi problems.",
            ),
            Issue(
                "New devices will not pair with the Hub Mini",
                (
                    "won't pair with my new sensor",
                    "can't find any new devices",
                    "fails to add my new bulbs",
                ),
                "Keep the new device within 30 feet of the Hub Mini while pairing, make sure the "
                "device is in pairing mode, and check for a hub update in the app under "
                "Settings > Hub > Firmware.",
            ),
        ),
        extra=(
            (
                (
                    "How many devices can {it} handle?",
                    "Is there a limit to how many gadgets I can connect to {it}?",
                    "What's the maximum number of devices on one {short}?",
                ),
                "The Hub Mini can manage up to 150 devices.",
            ),
            (
                (
                    "What happens to {it} if the power goes out?",
                    "Does {it} keep working during a power cut?",
                    "Will {it} stay on in a blackout?",
                ),
                "The Hub Mini has a backup battery that keeps it running for up to 4 hours "
                "during a power cut.",
            ),
        ),
        install=(
            "Place the Hub Mini near the middle of your home, away from metal cabinets.",
            "Plug it in with the included USB-C adapter, or connect the Ethernet port to your "
            "router for the most reliable link.",
            "Open the Brightnest app, tap Add device and choose Hub Mini.",
            "Scan the QR code on the bottom of the hub when the app asks for it.",
            "Wait for the light ring to turn solid white, which means the hub is online.",
            "Add your other Brightnest devices one at a time, keeping each within 30 feet of "
            "the hub while it pairs.",
        ),
        release_items=(
            "faster Zigbee pairing for Glow Bulb A19 Color bulbs",
            "local automations now run even when the internet connection is down",
            "improved Thread network stability with more than 40 devices",
            "the light ring can be dimmed from the app",
            "Matter sharing with Apple Home no longer times out",
            "fixed a rare crash when the backup battery was fully drained",
        ),
        review_pos=(
            "the hub picked up all twenty of my devices without a hitch",
            "the backup battery kept everything running through a power cut",
            "Matter pairing with Apple Home worked on the first try",
            "the Hub Mini is small enough to hide behind the TV",
        ),
        review_neg=(
            "the hub loses its internet connection and pulses amber every evening",
            "half my Zigbee sensors fell off the hub after an update",
            "the hub refused to pair with my older bulbs",
            "the light ring on the hub is far too bright at night",
        ),
        review_neu=(
            "the hub sits next to my router on an Ethernet cable",
            "the hub runs about thirty devices in our house",
            "the Hub Mini came with a short USB-C cable and adapter",
        ),
    ),
    Product(
        name="Aura Thermostat",
        short="thermostat",
        line="Climate & Sensors",
        price="$149",
        pack="",
        summary=(
            "The Aura Thermostat is a smart thermostat with a 3.5-inch color touchscreen that "
            "learns your schedule and lets you adjust heating and cooling from the app."
        ),
        connectivity=(
            "The Aura Thermostat connects over Wi-Fi (2.4 GHz) and Thread, so it works with or "
            "without the Hub Mini."
        ),
        power=(
            "It is powered by your heating system's 24 V C-wire; if you don't have one, use the "
            "Power Adapter Kit included in the box."
        ),
        features=(
            "It works with most 24 V heating and cooling systems, including gas, oil and "
            "electric furnaces and heat pumps with auxiliary heat, up to 2 heating and 2 "
            "cooling stages, and it pairs with up to 6 Aura Room Sensors."
        ),
        hub="No hub is needed; the Aura Thermostat connects to your Wi-Fi directly.",
        reset=(
            "To factory reset the Aura Thermostat, open Menu > Settings > Reset on the "
            "thermostat and choose Factory reset."
        ),
        issues=(
            Issue(
                "Aura Thermostat screen is blank",
                ("has a blank screen", "went completely dark", "won't turn on"),
                "Check that the breaker and the furnace power switch are on, then confirm the "
                "C-wire is connected; if your system has no C-wire, install the included Power "
                "Adapter Kit. An E2 code on the screen also means low power.",
            ),
            Issue(
                "Aura Thermostat shows error E1",
                ("shows an E1 error", "says E1 on the screen", "displays error code E1"),
                "E1 means the wiring doesn't match what the thermostat expects. Turn off power "
                "at the breaker, check each wire against its label and the photo of your old "
                "wiring, then run the wiring check in the app again.",
            ),
        ),
        extra=(
            (
                (
                    "Will {it} work with my electric baseboard heaters?",
                    "We have baseboard heat in the bedrooms. Is {it} compatible?",
                    "Can I use the {short} with 240 V baseboard heaters?",
                ),
                "No, the Aura Thermostat works with 24 V systems and is not compatible with "
                "line-voltage (120 V or 240 V) electric baseboard heaters.",
            ),
            (
                (
                    "My house doesn't have a C-wire. Can I still install {it}?",
                    "What if there's no C-wire behind my old thermostat?",
                    "Do I need a C-wire for the {short}?",
                ),
                "You can still install it: the Aura Thermostat includes a Power Adapter Kit for "
                "systems without a C-wire.",
            ),
            (
                (
                    "How many room sensors can I add to {it}?",
                    "Is there a limit on room sensors for the {short}?",
                    "Could I put a sensor in every bedroom with {it}?",
                ),
                "You can pair up to 6 Aura Room Sensors with one Aura Thermostat.",
            ),
        ),
        install=(
            "Turn off power to your heating and cooling system at the breaker.",
            "Remove the old thermostat's faceplate and take a photo of the wiring.",
            "Label each wire with the included stickers, then disconnect the old base.",
            "Mount the Aura base plate with the built-in level and connect the labeled wires; "
            "if there is no C-wire, install the Power Adapter Kit at the furnace.",
            "Snap the display onto the base and turn the breaker back on.",
            "Follow the setup steps on the screen and in the Brightnest app to join Wi-Fi and "
            "create your first schedule.",
        ),
        release_items=(
            "the Eco schedule now adapts to weather forecasts",
            "heat pump defrost cycles are shown on the screen",
            "room sensor averaging reacts faster when rooms become occupied",
            "a new wiring check catches swapped W and Y wires before they cause an E1 error",
            "the screen brightness follows the ambient light sensor more smoothly",
            "fixed an issue where the E2 low power warning appeared after a brief outage",
        ),
        review_pos=(
            "the schedule learned our routine within a week",
            "the color screen is easy to read from across the hall",
            "installation took twenty minutes with the Power Adapter Kit",
            "our heating bill dropped noticeably this winter",
        ),
        review_neg=(
            "the thermostat kept throwing an E2 error until I paid an electrician",
            "the thermostat screen goes blank at random in the middle of the night",
            "the thermostat lost our schedule twice in one month",
            "the thermostat turned out not to work with our baseboard heaters",
        ),
        review_neu=(
            "the thermostat replaced an old dial model in our hallway",
            "we mostly use the thermostat for its weekday schedule",
            "the thermostat needed the included adapter because we have no C-wire",
        ),
    ),
    Product(
        name="Aura Room Sensor",
        short="room sensor",
        line="Climate & Sensors",
        price="$39",
        pack="$69 for a 2-pack",
        summary=(
            "The Aura Room Sensor measures temperature and occupancy so the Aura Thermostat "
            "can keep the rooms you actually use comfortable."
        ),
        connectivity=(
            "The Aura Room Sensor uses Thread and must be within 60 feet of an Aura Thermostat "
            "or a Hub Mini."
        ),
        power="It runs on one CR2032 coin battery that lasts up to 2 years.",
        features=(
            "It reports temperature and occupancy to the Aura Thermostat, which can average or "
            "prioritize the rooms you choose."
        ),
        hub="It needs either an Aura Thermostat or a Brightnest Hub Mini to connect.",
        reset=(
            "To reset the Aura Room Sensor, remove the battery, hold the button while you put "
            "the battery back in, and keep holding for 5 seconds until the light blinks green."
        ),
        issues=(
            Issue(
                "Aura Room Sensor stopped reporting",
                (
                    "stopped reporting the temperature",
                    "shows no data in the app",
                    "isn't updating anymore",
                ),
                "Make sure the plastic battery tab was removed, replace the CR2032 battery, and "
                "move the sensor within 60 feet of the thermostat or hub.",
            ),
        ),
        extra=(
            (
                (
                    "Is there a discount if I buy two {short}s?",
                    "Do you sell {it} in a multipack?",
                    "What does a 2-pack of the {short}s cost?",
                ),
                "The Aura Room Sensor is $39 on its own or $69 for a 2-pack.",
            ),
            (
                (
                    "How far from the thermostat can {it} be?",
                    "What's the range of the {short}?",
                    "Will {it} reach a bedroom at the far end of the house?",
                ),
                "The Aura Room Sensor needs to be within 60 feet of the Aura Thermostat or a "
                "Hub Mini.",
            ),
        ),
        install=(
            "Pull out the plastic tab to connect the CR2032 battery.",
            "In the Brightnest app, open your Aura Thermostat and tap Add room sensor.",
            "Hold the sensor within a few feet of the thermostat until the app confirms it.",
            "Place it on a shelf or wall about 5 feet high, away from vents, lamps and direct "
            "sun, and within 60 feet of the thermostat or hub.",
            "Name the room and choose whether the thermostat should average it or prioritize "
            "it when the room is occupied.",
        ),
        release_items=(
            "occupancy detection ignores pets under 40 pounds more reliably",
            "battery level readings are more accurate in cold rooms",
            "the sensor reconnects faster after the thermostat restarts",
            "temperature reports every 2 minutes instead of every 5 when a room is occupied",
            "fixed a bug that showed no data after a Thread network change",
        ),
        review_pos=(
            "the room sensor finally fixed our freezing upstairs bedroom",
            "the coin battery in the room sensor is still at 90 percent after a year",
            "the room sensor paired with the thermostat in seconds",
            "the occupancy detection in the room sensor is surprisingly accurate",
        ),
        review_neg=(
            "the room sensor drops off every few days and shows no data",
            "the room sensor reads three degrees warmer than my other thermometers",
            "the room sensor chewed through its battery in two months",
            "the room sensor keeps thinking an empty room is occupied",
        ),
        review_neu=(
            "the room sensor is about the size of a cookie",
            "we put one room sensor in the nursery and one in the office",
            "the room sensor runs on a single coin battery",
        ),
    ),
    Product(
        name="Aura Leak Sensor",
        short="leak sensor",
        line="Climate & Sensors",
        price="$29",
        pack="",
        summary=(
            "The Aura Leak Sensor sits on the floor near water heaters, sinks and washing "
            "machines and warns you the moment water touches its probes."
        ),
        connectivity="The Aura Leak Sensor uses Zigbee 3.0, so it needs a Brightnest Hub Mini.",
        power=(
            "It runs on 2 AAA batteries that last about 3 years, and it chirps once a minute "
            "when they run low."
        ),
        features=(
            "When its probes detect water it sounds an 85 dB siren and sends a notification "
            "to your phone through the Brightnest app."
        ),
        hub="Yes, the Aura Leak Sensor requires a Brightnest Hub Mini because it uses Zigbee.",
        reset=(
            "To reset the Aura Leak Sensor, hold its button for 8 seconds until the light "
            "flashes blue three times."
        ),
        issues=(
            Issue(
                "Aura Leak Sensor chirps every minute",
                (
                    "keeps chirping every minute",
                    "beeps once a minute",
                    "makes a short chirp over and over",
                ),
                "A chirp once a minute means the batteries are low. Replace both AAA batteries "
                "at the same time, then test the sensor by touching a wet cloth to the probes.",
            ),
            Issue(
                "Aura Leak Sensor did not alert during a test",
                (
                    "didn't alert me when I tested it",
                    "stayed silent when I put it in water",
                    "never sent me a notification during a test",
                ),
                "Place it flat so both metal probes touch the floor, check that it shows online "
                "in the app, and test it with a wet cloth; if it is offline, move the Hub Mini "
                "closer.",
            ),
        ),
        extra=(
            (
                (
                    "How loud is the alarm on {it}?",
                    "Will I hear {it} from upstairs?",
                    "Does the {short} make a sound or only notify my phone?",
                ),
                "The Aura Leak Sensor sounds an 85 dB siren and also sends a notification to "
                "your phone.",
            ),
        ),
        install=(
            "Remove the battery cover and insert the 2 included AAA batteries.",
            "In the Brightnest app, tap Add device, choose Aura Leak Sensor and follow the "
            "pairing steps; a Hub Mini must already be set up.",
            "Place the sensor flat on the floor where a leak would start, such as beside the "
            "water heater or under the sink.",
            "Make sure both metal probes on the bottom touch the floor.",
            "Test it by touching a wet cloth to the probes: the siren sounds and your phone "
            "gets a notification.",
        ),
        release_items=(
            "leak alerts reach your phone up to 2 seconds faster",
            "a weekly self-test confirms the siren still works",
            "the low battery chirp can be snoozed for 8 hours at night",
            "freeze warnings when the floor temperature drops below 40 degrees Fahrenheit",
            "fixed false alarms caused by condensation on very humid days",
        ),
        review_pos=(
            "the leak sensor caught a dripping water heater before it ruined the floor",
            "the leak sensor siren is loud enough to hear from the attic",
            "setting up the leak sensor took two minutes",
            "the leak sensor alert reached my phone while I was at work",
        ),
        review_neg=(
            "the leak sensor chirps constantly even with new batteries",
            "the leak sensor stayed silent when the washing machine overflowed",
            "the leak sensor needs a separate hub, which nobody mentioned",
            "the leak sensor goes offline every time the hub updates",
        ),
        review_neu=(
            "the leak sensor sits under our kitchen sink",
            "the leak sensor needs the Hub Mini to work",
            "the leak sensor runs on two AAA batteries",
        ),
    ),
    Product(
        name="Vista Cam Indoor",
        short="indoor camera",
        line="Security",
        price="$59",
        pack="",
        summary=(
            "The Vista Cam Indoor is a plug-in camera for watching over rooms, pets and "
            "entryways, with a privacy shutter you can close from the app."
        ),
        connectivity="The Vista Cam Indoor connects over Wi-Fi on the 2.4 GHz band only.",
        power="It plugs in with the included USB-C cable and adapter, and it has no battery.",
        features=(
            "It records 1080p HD video with a 130-degree field of view and night vision up to 25 "
            "feet, has two-way audio, and stores clips on a microSD card up to 256 GB."
        ),
        hub="No hub is needed; it connects to your Wi-Fi directly.",
        reset=(
            "To reset the Vista Cam Indoor, hold the reset button for 5 seconds until you hear "
            "the voice prompt saying reset successful."
        ),
        issues=(
            Issue(
                "Vista Cam Indoor will not connect to Wi-Fi",
                (
                    "won't connect to my Wi-Fi",
                    "fails during setup",
                    "keeps showing a solid red light",
                ),
                "The Vista Cam Indoor only works on 2.4 GHz Wi-Fi, so join the 2.4 GHz network "
                "during setup. A blinking blue light means it is ready to pair, and a solid red "
                "light means it has no Wi-Fi.",
            ),
            Issue(
                "Vista Cam Indoor night vision is blurry",
                (
                    "has blurry night vision",
                    "shows a white haze at night",
                    "looks washed out in the dark",
                ),
                "Remove the protective film, clean the lens with a soft cloth, and don't point "
                "the camera through a window, because the glass reflects its infrared light.",
            ),
        ),
        extra=(
            (
                (
                    "What's the biggest memory card {it} takes?",
                    "Can I record to an SD card on {it}, and how big?",
                    "Does the {short} support local storage?",
                ),
                "The Vista Cam Indoor records to a microSD card up to 256 GB.",
            ),
            (
                (
                    "How far can {it} see in the dark?",
                    "Does the {short} have night vision?",
                    "Will {it} work in a dark hallway at night?",
                ),
                "The Vista Cam Indoor has night vision up to 25 feet.",
            ),
        ),
        install=(
            "Plug the camera in with the included USB-C cable and adapter.",
            "Wait for the light to blink blue, which means it is ready to pair.",
            "In the Brightnest app, tap Add device, choose Vista Cam Indoor and connect it to "
            "your 2.4 GHz Wi-Fi network.",
            "Hold your phone's QR code in front of the lens until the camera chimes.",
            "Insert a microSD card of up to 256 GB if you want local recording.",
            "Place the camera on a shelf or mount it with the included bracket, pointing away "
            "from windows.",
        ),
        release_items=(
            "the privacy shutter can close automatically when you arrive home",
            "sound detection for crying babies and barking dogs",
            "faster live view startup on slow connections",
            "microSD recordings can be exported as a single video file",
            "night vision switches more smoothly at dusk",
            "fixed the solid red light appearing after a router restart",
        ),
        review_pos=(
            "the indoor camera picture is sharp even at night",
            "two-way audio on the indoor camera lets me talk to the dog from work",
            "the privacy shutter on the indoor camera gives me real peace of mind",
            "the indoor camera records to a memory card, so I skipped the subscription",
        ),
        review_neg=(
            "the indoor camera drops off the Wi-Fi every couple of hours",
            "night vision on the indoor camera is a blurry white mess",
            "the indoor camera refuses to work on my 5 GHz network",
            "live view on the indoor camera takes forever to load",
        ),
        review_neu=(
            "the indoor camera sits on a bookshelf facing the front door",
            "the indoor camera has a USB-C cable rather than a battery",
            "I use the indoor camera mostly to check on the cat",
        ),
    ),
    Product(
        name="Vista Cam Outdoor",
        short="outdoor camera",
        line="Security",
        price="$129",
        pack="",
        summary=(
            "The Vista Cam Outdoor is a wire-free security camera for yards, driveways and "
            "porches, with a built-in spotlight for color night vision."
        ),
        connectivity="The Vista Cam Outdoor connects over Wi-Fi on the 2.4 GHz band.",
        power=(
            "Its 6,500 mAh rechargeable battery lasts up to 4 months per charge and charges "
            "fully in about 6 hours over USB-C; the optional Vista Solar Panel ($34) keeps it "
            "topped up."
        ),
        features=(
            "It records 2K video with color night vision and a spotlight, and it is rated IP65 "
            "for rain and dust, working from -4 to 122 degrees Fahrenheit."
        ),
        hub="No hub is needed; it connects to your Wi-Fi directly.",
        reset=(
            "To reset the Vista Cam Outdoor, hold the sync button for 15 seconds until the "
            "light flashes red."
        ),
        issues=(
            Issue(
                "Vista Cam Outdoor battery drains quickly",
                (
                    "is draining its battery really fast",
                    "needs charging every couple of weeks",
                    "loses charge much quicker than advertised",
                ),
                "A charge should last up to 4 months. Lower the motion sensitivity, draw activity "
                "zones so passing cars don't trigger it, and turn on Power Saver in the app; a "
                "weak Wi-Fi signal also uses more battery.",
            ),
            Issue(
                "Vista Cam Outdoor misses motion",
                (
                    "misses people walking up the driveway",
                    "doesn't record motion events",
                    "isn't picking up motion",
                ),
                "Raise the motion sensitivity, mount the camera 7 to 10 feet high and angled "
                "down, and check that the activity zones cover the area you want to watch.",
            ),
        ),
        extra=(
            (
                (
                    "Is there a solar option for {it}?",
                    "Can I avoid recharging {it} all the time?",
                    "Do you sell a solar panel for the {short}?",
                ),
                "Yes, the optional Vista Solar Panel costs $34 and keeps the Vista Cam Outdoor's "
                "battery topped up.",
            ),
            (
                (
                    "Can {it} handle rain and snow?",
                    "Is the {short} weatherproof?",
                    "Will {it} survive a cold winter outside?",
                ),
                "Yes, the Vista Cam Outdoor is rated IP65 for rain and dust and works from -4 to "
                "122 degrees Fahrenheit.",
            ),
            (
                (
                    "How long does a charge last on {it}?",
                    "How often will I have to charge the {short}?",
                    "What's the battery life of {it}?",
                ),
                "The Vista Cam Outdoor's 6,500 mAh battery lasts up to 4 months per charge.",
            ),
        ),
        install=(
            "Charge the battery fully with the included USB-C cable, which takes about 6 hours.",
            "In the Brightnest app, tap Add device, choose Vista Cam Outdoor and press the sync "
            "button when asked.",
            "Check the Wi-Fi signal at the mounting spot with the app's signal test before "
            "drilling.",
            "Mount the bracket 7 to 10 feet high, angled slightly down toward the area to watch.",
            "Attach the camera to the magnetic mount and set up activity zones in the app.",
        ),
        release_items=(
            "Power Saver mode now extends battery life by up to 20 percent",
            "vehicle detection so passing cars can be ignored",
            "the spotlight can turn on automatically when a person is detected",
            "faster wake-up from motion, capturing the first second of each event",
            "battery percentage is shown on the camera tile in the app",
            "fixed activity zones resetting after a firmware update",
        ),
        review_pos=(
            "the outdoor camera's battery lasted almost four months on one charge",
            "color night vision on the outdoor camera is genuinely impressive",
            "the outdoor camera survived a snowstorm without a hiccup",
            "with the solar panel I never have to charge the outdoor camera",
        ),
        review_neg=(
            "the outdoor camera's battery died after barely three weeks",
            "the outdoor camera misses half the people who walk up the driveway",
            "the outdoor camera fogs up inside after every rainstorm",
            "the outdoor camera keeps losing Wi-Fi even ten feet from the router",
        ),
        review_neu=(
            "the outdoor camera is mounted above our garage door",
            "the outdoor camera came with a magnetic mount and a USB-C cable",
            "I charge the outdoor camera every few months",
        ),
    ),
    Product(
        name="Porchlight Video Doorbell",
        short="doorbell",
        line="Security",
        price="$99",
        pack="",
        summary=(
            "The Porchlight Video Doorbell shows who is at the door on your phone and lets you "
            "talk to visitors from anywhere."
        ),
        connectivity="The Porchlight Video Doorbell connects over Wi-Fi on the 2.4 GHz band.",
        power=(
            "It runs on its rechargeable battery for up to 6 months per charge, or you can "
            "hardwire it to a doorbell transformer of 16 to 24 V AC; a full charge takes about 5 "
            "hours."
        ),
        features=(
            "It records head-to-toe 1536p video with two-way talk and quick replies, and it "
            "rings your existing mechanical chime when hardwired; the plug-in Porchlight Chime "
            "costs $29."
        ),
        hub="No hub is needed; it connects to your Wi-Fi directly.",
        reset=(
            "To reset the Porchlight Video Doorbell, hold the setup button on the back for 20 "
            "seconds until the light ring spins red."
        ),
        issues=(
            Issue(
                "Porchlight doorbell does not ring the indoor chime",
                (
                    "doesn't ring my chime inside",
                    "won't ring the old chime in the hallway",
                    "rings on my phone but not on the chime",
                ),
                "Your existing chime only rings when the doorbell is hardwired. In the app, set "
                "Chime type to Mechanical and check that the transformer supplies 16 to 24 V AC.",
            ),
            Issue(
                "Porchlight doorbell notifications arrive late",
                (
                    "sends notifications really late",
                    "alerts me long after someone rings",
                    "has notifications that lag by several seconds",
                ),
                "Check the Wi-Fi signal in the app (it should show at least 2 bars), move your "
                "router or add a Wi-Fi extender, and turn off battery optimization for the "
                "Brightnest app on your phone.",
            ),
        ),
        extra=(
            (
                (
                    "Can I use {it} without any wiring?",
                    "Does the {short} have to be hardwired?",
                    "I rent and can't touch the wiring. Will {it} still work?",
                ),
                "Wiring is optional: the Porchlight Video Doorbell runs on its rechargeable "
                "battery for up to 6 months per charge.",
            ),
            (
                (
                    "Is there a chime I can plug in for {it}?",
                    "How do I hear the {short} inside if it's on battery?",
                    "Do you sell an indoor chime for {it}?",
                ),
                "The plug-in Porchlight Chime costs $29 and rings inside even when the doorbell "
                "runs on battery.",
            ),
        ),
        install=(
            "Charge the doorbell fully, which takes about 5 hours, or turn off the breaker if "
            "you are hardwiring it.",
            "In the Brightnest app, tap Add device, choose Porchlight Video Doorbell and press "
            "the setup button on the back.",
            "Mount the bracket about 4 feet above the ground with the included screws.",
            "If hardwiring, connect the two doorbell wires to the terminals; the transformer "
            "must supply 16 to 24 V AC.",
            "Click the doorbell onto the bracket and, for an existing chime, set Chime type to "
            "Mechanical in the app.",
        ),
        release_items=(
            "quick replies can be recorded in your own voice",
            "package detection alerts you when a delivery is left at the door",
            "ring notifications arrive up to 1 second faster",
            "the light ring can stay dim at night",
            "improved noise reduction for two-way talk on windy days",
            "fixed the mechanical chime buzzing on some 24 V transformers",
        ),
        review_pos=(
            "the doorbell shows packages on the doormat thanks to the tall video",
            "talking to delivery drivers through the doorbell is easy and clear",
            "the doorbell battery lasts months between charges",
            "the doorbell rings our old hallway chime perfectly once hardwired",
        ),
        review_neg=(
            "the doorbell notification arrives after the visitor has already left",
            "the doorbell won't ring our existing chime no matter what I try",
            "the doorbell video is choppy whenever someone is actually at the door",
            "the doorbell battery dropped to zero within a month",
        ),
        review_neu=(
            "the doorbell replaced a plain push button on our front porch",
            "the doorbell runs on battery because I rent",
            "the doorbell came with a bracket and two wedge mounts",
        ),
    ),
    Product(
        name="Keystone Smart Lock",
        short="smart lock",
        line="Security",
        price="$219",
        pack="",
        summary=(
            "The Keystone Smart Lock replaces your deadbolt with a keypad lock you can open by "
            "code, by phone or with the physical backup key."
        ),
        connectivity=(
            "The Keystone Smart Lock uses Bluetooth LE and Thread with Matter support, and a "
            "Hub Mini adds remote access when you are away from home."
        ),
        power=(
            "It runs on 4 AA batteries that last about 9 months; the app warns you at 20 "
            "percent, and an emergency USB-C port under the keypad gives it temporary power."
        ),
        features=(
            "It fits standard US deadbolt doors from 1-3/8 to 2-1/4 inches thick, stores up to "
            "50 keypad codes, can auto-lock after 30 seconds to 5 minutes, and comes with a "
            "physical backup key."
        ),
        hub=(
            "It works over Bluetooth without a hub, but you need a Hub Mini to lock or unlock it "
            "remotely."
        ),
        reset=(
            "To factory reset the Keystone Smart Lock, remove the battery cover and hold the "
            "Program button for 10 seconds until you hear three beeps."
        ),
        issues=(
            Issue(
                "Keystone Smart Lock does not lock fully",
                (
                    "doesn't lock all the way",
                    "makes a grinding noise when it locks",
                    "jams halfway when locking",
                ),
                "Make sure the door is fully closed and the bolt lines up with the strike plate "
                "hole, then run Door Calibration in the app under the lock's settings.",
            ),
            Issue(
                "Keystone Smart Lock keypad is dead",
                (
                    "has a completely dead keypad",
                    "won't respond to the keypad at all",
                    "won't unlock because the batteries died",
                ),
                "Use the physical backup key, or connect a USB-C power bank to the emergency "
                "port under the keypad to wake the lock, then replace all 4 AA batteries.",
            ),
        ),
        extra=(
            (
                (
                    "How many codes can {it} store?",
                    "Can I give separate codes to the whole family and the dog walker on {it}?",
                    "Is there a limit on keypad codes for the {short}?",
                ),
                "The Keystone Smart Lock stores up to 50 keypad codes.",
            ),
            (
                (
                    "Can {it} lock itself automatically?",
                    "Does the {short} have auto-lock?",
                    "I always forget to lock up. Will {it} do it for me?",
                ),
                "Yes, the Keystone Smart Lock can auto-lock after 30 seconds to 5 minutes, which "
                "you set in the app.",
            ),
            (
                (
                    "Will {it} fit my front door?",
                    "What doors does the {short} fit?",
                    "My door is pretty thick. Is {it} going to fit?",
                ),
                "The Keystone Smart Lock fits standard US deadbolt doors from 1-3/8 to 2-1/4 "
                "inches thick.",
            ),
        ),
        install=(
            "Remove your old deadbolt's thumb turn and keypad, keeping the door open.",
            "Insert the new Keystone bolt into the door edge and screw in the faceplate.",
            "Fit the outdoor keypad and route its cable through the bolt hole.",
            "Attach the indoor mounting plate and connect the cable to the indoor unit.",
            "Insert the 4 AA batteries and close the battery cover.",
            "In the Brightnest app, tap Add device, choose Keystone Smart Lock and run Door "
            "Calibration so the lock learns your door.",
        ),
        release_items=(
            "one-time guest codes that expire after a single use",
            "auto-lock can wait until the door sensor reports the door is closed",
            "the low battery warning at 20 percent now also sends an email",
            "faster Bluetooth unlocking when you approach with your phone",
            "an activity log entry for every keypad code used",
            "fixed the motor straining on doors with tight strike plates",
        ),
        review_pos=(
            "the smart lock opens with a code, so the kids never lose keys anymore",
            "the smart lock's auto-lock means I never worry about the front door",
            "the smart lock batteries lasted almost ten months",
            "installing the smart lock took half an hour with a screwdriver",
        ),
        review_neg=(
            "the smart lock grinds and jams halfway every few days",
            "the smart lock keypad died and left me standing outside in the rain",
            "the smart lock only works remotely if you also buy the hub",
            "the smart lock eats through AA batteries in two months",
        ),
        review_neu=(
            "the smart lock replaced a standard deadbolt on our back door",
            "the smart lock takes four AA batteries",
            "we have about six codes set up on the smart lock",
        ),
    ),
    Product(
        name="Glow Bulb A19 Color",
        short="bulb",
        line="Lighting & Power",
        price="$19.99",
        pack="$64.99 for a 4-pack",
        summary=(
            "The Glow Bulb A19 Color is a color-changing smart bulb for standard E26 sockets "
            "that you control from the app, by voice or with automations."
        ),
        connectivity=(
            "The Glow Bulb uses Zigbee 3.0 and Bluetooth: without a hub you can control it over "
            "Bluetooth within 30 feet, and with a Hub Mini from anywhere."
        ),
        power=(
            "It gives 800 lumens (a 60 W equivalent) while drawing 9 W, and it is rated for "
            "25,000 hours."
        ),
        features=(
            "It offers 16 million colors and tunable white from 2700 K to 6500 K, but it should "
            "not be used with wall dimmer switches."
        ),
        hub=(
            "No, the Glow Bulb works over Bluetooth on its own, but a Hub Mini adds remote "
            "control and automations."
        ),
        reset=(
            "To reset the Glow Bulb, turn the light switch off and on 5 times, about 1 second "
            "each, until the bulb flashes."
        ),
        issues=(
            Issue(
                "Glow Bulb is unresponsive",
                (
                    "is unresponsive in the app",
                    "won't change color anymore",
                    "shows as unreachable",
                ),
                "Leave the wall switch on, because cutting the power takes the bulb offline, and "
                "don't use it with a dimmer switch. If it stays unreachable, toggle the power "
                "once and move the hub closer.",
            ),
            Issue(
                "Glow Bulb flickers",
                ("flickers", "flickers when I dim it", "buzzes and flickers"),
                "Flickering usually means the bulb is on a wall dimmer. Replace the dimmer with "
                "a standard switch, or set the dimmer to full brightness and dim from the app "
                "instead.",
            ),
        ),
        extra=(
            (
                (
                    "Do you sell {it} in a multipack?",
                    "Is it cheaper to buy a few of the {short}s at once?",
                    "Is there a bundle deal on the {short}s?",
                ),
                "The Glow Bulb A19 Color is $19.99 each or $64.99 for a 4-pack.",
            ),
            (
                (
                    "How bright is {it}?",
                    "How many lumens does the {short} put out?",
                    "Is {it} bright enough to replace a normal 60 watt bulb?",
                ),
                "The Glow Bulb gives 800 lumens, the equivalent of a 60 W bulb, while drawing "
                "only 9 W.",
            ),
        ),
        install=(
            "Screw the bulb into a standard E26 socket that is not on a dimmer switch.",
            "Turn the wall switch on; the bulb glows warm white when it is ready to pair.",
            "In the Brightnest app, tap Add device and choose Glow Bulb A19 Color.",
            "Keep your phone within 30 feet so it can find the bulb over Bluetooth.",
            "If you have a Hub Mini, let the app move the bulb to Zigbee for remote control "
            "and automations.",
            "Leave the wall switch on from now on, and control the light from the app.",
        ),
        release_items=(
            "smoother color fades in scenes",
            "power-on behavior can restore the last color after an outage",
            "circadian mode follows sunrise and sunset",
            "bulbs in the same room now change together without a visible delay",
            "improved Bluetooth range for homes without a hub",
            "fixed a faint flicker at the lowest brightness level",
        ),
        review_pos=(
            "the bulbs produce rich, saturated colors",
            "the bulbs work over Bluetooth, so I didn't need a hub",
            "the wake-up light routine with the bulbs changed my mornings",
            "the warm white on the bulbs looks like a real incandescent",
        ),
        review_neg=(
            "the bulbs flicker constantly when dimmed",
            "one of the bulbs became unreachable after a week",
            "the bulbs forget their color every time the power blinks",
            "the bulbs are much dimmer than the box suggests",
        ),
        review_neu=(
            "the bulbs went into the living room floor lamps",
            "the bulbs came as a 4-pack",
            "I control the bulbs over Bluetooth from my phone",
        ),
    ),
    Product(
        name="Glow Plug",
        short="smart plug",
        line="Lighting & Power",
        price="$24.99",
        pack="$39.99 for a 2-pack",
        summary=(
            "The Glow Plug turns any lamp or appliance into a smart device you can schedule, "
            "switch remotely and monitor for energy use."
        ),
        connectivity="The Glow Plug connects over Wi-Fi on the 2.4 GHz band, so no hub is needed.",
        power=("It handles loads up to 15 A (1,800 W) and measures energy use in real time."),
        features=(
            "It supports schedules, energy monitoring and Matter, so it works with Alexa, "
            "Google Home and Apple Home, and it is for indoor use only."
        ),
        hub="No hub is needed; the Glow Plug connects to your Wi-Fi directly.",
        reset=(
            "To reset the Glow Plug, hold the side button for 6 seconds until the light blinks "
            "red rapidly."
        ),
        issues=(
            Issue(
                "Glow Plug keeps going offline",
                (
                    "keeps going offline",
                    "drops off the network every night",
                    "disconnects randomly",
                ),
                "The Glow Plug only uses 2.4 GHz Wi-Fi. If your router combines both bands under "
                "one name, turn on its 2.4 GHz compatibility mode, and keep the plug within "
                "range of the router.",
            ),
        ),
        extra=(
            (
                (
                    "Can I plug a space heater into {it}?",
                    "What's the maximum load for the {short}?",
                    "Is {it} strong enough for a window air conditioner?",
                ),
                "The Glow Plug handles loads up to 15 A (1,800 W), so check that your appliance "
                "stays under that.",
            ),
            (
                (
                    "Can I use {it} outside on the patio?",
                    "Is the {short} weatherproof?",
                    "Would {it} work for my outdoor string lights?",
                ),
                "The Glow Plug is for indoor use only, so please don't use it outdoors.",
            ),
            (
                (
                    "Is there a discount if I buy two of {it}?",
                    "Do you sell the {short} in a pack?",
                    "What's the price of a 2-pack of {short}s?",
                ),
                "The Glow Plug is $24.99 each or $39.99 for a 2-pack.",
            ),
        ),
        install=(
            "Plug the Glow Plug into an indoor wall outlet; the light blinks blue when it is "
            "ready.",
            "In the Brightnest app, tap Add device and choose Glow Plug.",
            "Connect it to your 2.4 GHz Wi-Fi network when the app asks.",
            "Name the plug after what it controls, such as Desk lamp or Coffee maker.",
            "Plug in the appliance, keeping it under 15 A (1,800 W), and set up schedules or "
            "energy reports.",
        ),
        release_items=(
            "monthly energy reports with cost estimates",
            "away mode switches lamps on and off at random times",
            "the plug remembers its on or off state after a power cut",
            "Matter pairing now shows a clear error when the Wi-Fi password is wrong",
            "fixed the plug dropping offline every night on some mesh routers",
        ),
        review_pos=(
            "the smart plug's energy monitoring showed me how much the old fridge costs",
            "schedules on the smart plug have been perfectly reliable",
            "the smart plug set up in under two minutes",
            "the smart plug is compact enough to leave the second outlet free",
        ),
        review_neg=(
            "the smart plug goes offline every single night",
            "the smart plug refused to connect to my mesh Wi-Fi",
            "the smart plug clicks loudly every time it switches",
            "the smart plug's energy readings are obviously wrong",
        ),
        review_neu=(
            "the smart plug runs a lamp in the hallway",
            "the smart plug came as a 2-pack",
            "I use the smart plug for a coffee maker schedule",
        ),
    ),
    Product(
        name="Tempo Speaker",
        short="speaker",
        line="Hub & Audio",
        price="$89",
        pack="",
        summary=(
            "The Tempo Speaker is a portable smart speaker that plays music over Wi-Fi at home "
            "and over Bluetooth anywhere else."
        ),
        connectivity=(
            "The Tempo Speaker uses Wi-Fi (2.4 GHz or 5 GHz) and Bluetooth 5.3, with AirPlay 2 "
            "and Chromecast built in."
        ),
        power=(
            "Its built-in battery plays for up to 12 hours and recharges over USB-C in about 3 "
            "hours."
        ),
        features=(
            "It has 20 W stereo sound and IPX4 splash resistance, so it is fine in a kitchen or "
            "bathroom but should never be submerged."
        ),
        hub="No hub is needed; the Tempo Speaker connects to your Wi-Fi or phone directly.",
        reset=(
            "To reset the Tempo Speaker, hold the volume down and power buttons together for 8 "
            "seconds."
        ),
        issues=(
            Issue(
                "Tempo Speaker will not pair over Bluetooth",
                (
                    "won't pair over Bluetooth",
                    "doesn't show up in my phone's Bluetooth list",
                    "can't connect to my laptop over Bluetooth",
                ),
                "Hold the Bluetooth button for 3 seconds until the light blinks blue, then pick "
                "Tempo Speaker in your phone's Bluetooth list; if it was paired before, forget "
                "the old pairing first.",
            ),
            Issue(
                "Tempo Speaker audio cuts out",
                ("stutters during music", "keeps cutting out", "drops the audio every few minutes"),
                "Move the speaker closer to your router or use the 5 GHz network, and update its "
                "firmware in the app; over Bluetooth, keep your phone within 30 feet.",
            ),
        ),
        extra=(
            (
                (
                    "Is {it} waterproof?",
                    "Can I take the {short} into the bathroom?",
                    "Will {it} survive being by the pool?",
                ),
                "The Tempo Speaker is IPX4 splash resistant, so splashes are fine, but it should "
                "never be submerged.",
            ),
            (
                (
                    "How long does {it} play on battery?",
                    "What's the battery life of the {short}?",
                    "Can I take {it} to the park for an afternoon?",
                ),
                "The Tempo Speaker plays for up to 12 hours on battery and recharges over USB-C "
                "in about 3 hours.",
            ),
        ),
        install=(
            "Charge the speaker with the included USB-C cable; a full charge takes about 3 hours.",
            "Hold the power button for 2 seconds to turn it on.",
            "In the Brightnest app, tap Add device, choose Tempo Speaker and join your Wi-Fi "
            "network.",
            "Link AirPlay 2 or Chromecast in the app if you want to cast music to it.",
            "For Bluetooth, hold the Bluetooth button for 3 seconds and pick Tempo Speaker on "
            "your phone.",
        ),
        release_items=(
            "stereo pairing of two Tempo Speakers",
            "a bass and treble equalizer in the app",
            "battery saver turns the speaker off after 20 minutes of silence",
            "AirPlay 2 streams start faster",
            "improved Bluetooth stability with older Android phones",
            "fixed audio stuttering on some 5 GHz networks",
        ),
        review_pos=(
            "the speaker sounds far bigger than its size",
            "the speaker battery easily lasts a full day at the beach",
            "switching the speaker between AirPlay and Bluetooth is seamless",
            "the speaker survived a splash from the kitchen sink without a problem",
        ),
        review_neg=(
            "the speaker cuts out every few minutes on Wi-Fi",
            "the speaker distorts badly at high volume",
            "the speaker forgets my phone every time I turn it off",
            "the speaker battery lasts maybe five hours, not twelve",
        ),
        review_neu=(
            "the speaker lives in the kitchen next to the fruit bowl",
            "the speaker charges over USB-C",
            "I mostly stream podcasts to the speaker",
        ),
    ),
)

PRODUCT_BY_NAME = {p.name: p for p in PRODUCTS}
CAMERAS = ("Vista Cam Indoor", "Vista Cam Outdoor", "Porchlight Video Doorbell")
LINES = tuple(WARRANTY)


# ---------------------------------------------------------------------------------------
# Company documents (Markdown): the source a retrieval index reads.
# ---------------------------------------------------------------------------------------


def policies_md() -> str:
    warranty_rows = "\n".join(
        f"| {line} | {', '.join(p.name for p in PRODUCTS if p.line == line)} | {WARRANTY[line]} |"
        for line in LINES
    )
    return f"""# {COMPANY} policies

{COMPANY} sells smart-home devices online at {SITE} and in the Brightnest app. These
policies apply to every order shipped within the United States. Questions about any of
them go to {EMAIL} or {PHONE}.

## Returns

{RETURN_RULE}, for a refund or an exchange. Opened and used items are welcome as long as
they are undamaged. {RETURN_CONDITION} Keep your order number handy: it starts with BN-.

Gift cards and items marked Final Sale cannot be returned.

To start a return, go to {SITE}/returns or open Account > Orders in the Brightnest app and
choose Return item. We email you a UPS return label right away, and you can drop the
package at any UPS location. {RETURN_LABEL} Brightnest never charges a restocking fee.

## Exchanges

Exchanges are free within {RETURN_DAYS} days of delivery, including a swap for a different
model or color. We ship the replacement as soon as the carrier scans your return, so you are
not without a device for long.

## Refunds

{REFUND_TIMING} We send an email when the refund is issued, and its status is shown under
Account > Orders.

{STORE_CREDIT}

Original shipping charges are refunded only if the item was defective or the mistake was
ours. Brightnest Rewards points earned on a returned item are removed from your balance.

A cancelled order is never charged: the pending authorization on your card is released
within 3 business days.

## Damaged, missing or wrong items

If an item arrives damaged, report it within 7 days of delivery with a photo, and we send a
free replacement. If the tracking page says delivered but the package has not arrived after
48 hours, contact us and we will send a replacement or a refund. Wrong items are exchanged
at no cost, including the return label.

## Warranty

Every Brightnest device is covered against defects in materials and workmanship from the
date of delivery. The length depends on the product line:

| Product line | Products | Warranty |
|---|---|---|
{warranty_rows}

The warranty does not cover accidental damage (drops, cracked screens), water damage beyond
the product's rating, misuse, or normal cosmetic wear.

To make a claim, submit the form at {SITE}/warranty with your order number and the device's
serial number. The serial number is on the label on the back or bottom of the device and in
the Brightnest app under Settings > Device info. Claims are reviewed within 2 business days,
and the replacement ships within 3 business days of approval, with free shipping both ways.

## CarePlus

{CAREPLUS} CarePlus is tied to the device's serial number and stays with the device if you
give it away.

## Shipping

| Option | Delivery time | Cost |
|---|---|---|
| Standard | 3 to 5 business days | $5.99, free on orders of ${FREE_SHIPPING_MIN} or more |
| Expedited | 2 business days | $12.99 |
| Overnight | next business day | $24.99 |

The free shipping minimum of ${FREE_SHIPPING_MIN} is based on your order subtotal after
discounts and before tax. Orders placed before 2 p.m. Eastern Time on a business day ship
the same day from our warehouse in Reno, Nevada; later orders ship the next business day.
Overnight orders must be placed by 2 p.m. Eastern Time and cannot go to PO boxes.

We ship to all 50 US states. Alaska and Hawaii get Standard shipping only, which takes 6 to
10 business days. We do not ship internationally, including to Canada. Packages travel with
UPS and USPS.

## Order tracking

When your order ships we email a shipping confirmation with the tracking number. You can
also follow every order under Account > Orders at {SITE}/orders or in the Brightnest app.
Order numbers start with BN- followed by 7 digits (for example BN-4821937). Tracking can take
up to 24 hours to update after the shipping email arrives.

## Changes and cancellations

You can cancel an order, or change its shipping address, within 1 hour of placing it, as
long as it has not shipped: open Account > Orders and choose Cancel order or Edit address.
After the first hour, contact support and we will try to stop the order. An order that has
already shipped can be returned within {RETURN_DAYS} days of delivery.

## Price adjustments

If the price of an item drops within {PRICE_ADJUST_DAYS} days of purchase, we refund the
difference once per item. Contact support with your order number to claim it. Price
adjustments do not apply to Final Sale items, and we do not match other retailers' prices.

## Payment methods

We accept Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, Google Pay and
Brightnest gift cards. On orders over $100 you can pay in 4 interest-free payments with
Klarna. Brightnest gift cards never expire.

## Brightnest Rewards

{REWARDS} Points are earned on the order subtotal before tax, not on shipping, and they post
to your account 14 days after delivery. Redeem them at checkout in blocks of 100 points.

{GOLD} Gold status lasts for the rest of that calendar year and the following one. Members
also get 200 bonus points on their birthday. Points expire after 12 months without a
purchase.

## Brightnest Protect

Brightnest Protect is an optional subscription for the Vista Cam Indoor, the Vista Cam
Outdoor and the Porchlight Video Doorbell. Without a plan you still get live view and
motion alerts, and the Vista Cam Indoor can record to a microSD card. The Vista Cam Outdoor
and the Porchlight Video Doorbell have no memory card slot, so saved clips need Protect.

{PROTECT} {PROTECT_PLUS} Every new camera or doorbell includes a 30-day free trial of
Protect. You can cancel any time under Account > Subscriptions, with no cancellation fee;
the plan stays active until the end of the billing month.

## Customer support

- Phone: {PHONE}, {SUPPORT_HOURS}. Closed on Sundays and US federal holidays.
- Live chat: in the Brightnest app and at {SITE}, during the same hours as the phone line.
- Email: {EMAIL}, any time; we reply within 1 business day.
"""


def products_md() -> str:
    overview = "\n".join(f"| {p.name} | {p.line} | {p.price} | {p.warranty} |" for p in PRODUCTS)
    sections = []
    for p in PRODUCTS:
        price = p.price + (f" ({p.pack})" if p.pack else "")
        hub = p.hub or "It is the hub: Zigbee devices such as the Aura Leak Sensor need it."
        sections.append(
            f"""## {p.name}

{p.summary}

- Price: {price}
- Product line: {p.line}, warranty of {p.warranty}
- Connectivity: {p.connectivity}
- Power: {p.power}
- Features: {p.features}
- Hub: {hub}
- Reset: {p.reset}
"""
        )
        for asks, answer in p.extra:
            del asks
            sections[-1] += f"- Good to know: {answer}\n"
    return f"""# {COMPANY} products

{COMPANY} designs and sells {len(PRODUCTS)} smart-home devices. All of them are set up and
controlled in the free Brightnest app (iOS 16 or later, Android 10 or later), and every
product's warranty runs from the date of delivery.

| Product | Product line | Price | Warranty |
|---|---|---|---|
{overview}

""" + "\n".join(sections)


FAQ: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Orders and shipping",
        (
            ("How much does shipping cost?", SHIPPING_OPTIONS),
            (
                "When will my order ship?",
                "Orders placed before 2 p.m. Eastern Time on a business day ship the same day; "
                "later orders ship the next business day.",
            ),
            (
                "Do you ship to Alaska, Hawaii or other countries?",
                "Alaska and Hawaii get Standard shipping only, which takes 6 to 10 business days. "
                "We ship to all 50 US states but not internationally, including to Canada.",
            ),
            (
                "Can I cancel or change my order?",
                "Within 1 hour of placing an order, as long as it has not shipped, open Account "
                "> Orders and choose Cancel order or Edit address. After that, contact support.",
            ),
            (
                "Which payment methods do you accept?",
                "Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, Google Pay and "
                "Brightnest gift cards. Orders over $100 can be split into 4 interest-free "
                "payments with Klarna.",
            ),
        ),
    ),
    (
        "Order tracking",
        (
            (
                "Where is my order?",
                f"Follow it under Account > Orders at {SITE}/orders or in the Brightnest app. "
                "The shipping confirmation email also contains the tracking number.",
            ),
            (
                "What does an order number look like?",
                "Order numbers start with BN- followed by 7 digits, for example BN-4821937. You "
                "find yours in the order confirmation email.",
            ),
            (
                "My tracking has not updated. Is something wrong?",
                "Tracking can take up to 24 hours to update after the shipping email arrives.",
            ),
            (
                "My package says delivered but it is not here.",
                "Check around your door and with neighbors. If it has not turned up after 48 "
                "hours, contact us and we will send a replacement or a refund.",
            ),
        ),
    ),
    (
        "Account and sign-in",
        (
            ("How do I reset my password?", PASSWORD_RESET),
            (
                "I did not get the password reset email.",
                "Check your spam or junk folder for a message from no-reply@brightnesthome.com, "
                "then request a new link. If nothing arrives within 10 minutes, contact support.",
            ),
            (
                "My reset link says it has expired.",
                "Reset links are valid for 30 minutes. Request a new one from the sign-in page.",
            ),
            ("Why is my account locked?", f"{LOCKOUT} Wait, then sign in or reset your password."),
            (
                "How do I turn on two-step verification?",
                "Turn on two-step verification under Account > Security in the Brightnest app "
                "or on the website.",
            ),
            (
                "How do I change the email address on my account?",
                "Change it under Account > Profile; we send a confirmation link to the new "
                "address before the change takes effect.",
            ),
            (
                "Can my family control our devices too?",
                "Yes, invite up to 10 household members under Settings > Household in the "
                "Brightnest app. Each member signs in with their own account.",
            ),
        ),
    ),
    (
        "Returns, refunds and warranty",
        (
            (
                "How long do I have to return something?",
                f"{RETURN_RULE}. {RETURN_CONDITION}",
            ),
            ("Who pays for return shipping?", RETURN_LABEL),
            ("Is there a restocking fee?", "No, Brightnest never charges a restocking fee."),
            ("When will I get my refund?", REFUND_TIMING),
            ("Can I get store credit instead?", STORE_CREDIT),
            (
                "What if my item arrived damaged?",
                "Report it within 7 days of delivery with a photo and we send a free replacement.",
            ),
            (
                "How long is the warranty?",
                "It depends on the product line: Climate & Sensors 3 years, Security 2 years, "
                "Lighting & Power 1 year, and Hub & Audio 18 months, all from the delivery date.",
            ),
            ("Can I extend my warranty?", CAREPLUS),
            (
                "What if the price drops after I buy?",
                f"If the price drops within {PRICE_ADJUST_DAYS} days of purchase, we refund the "
                "difference once per item. Contact support with your order number.",
            ),
        ),
    ),
    (
        "Brightnest Rewards",
        (
            ("How does Brightnest Rewards work?", REWARDS),
            ("When do my points show up?", "Points post to your account 14 days after delivery."),
            ("What is Gold status?", GOLD),
            (
                "Do points expire?",
                "Points expire after 12 months without a purchase. Members also get 200 bonus "
                "points on their birthday.",
            ),
        ),
    ),
    (
        "Brightnest Protect",
        (
            (
                "Do I need a subscription for my camera or doorbell?",
                "No. Without a plan you get live view and motion alerts. " + PROTECT,
            ),
            ("What if I have several cameras?", PROTECT_PLUS),
            (
                "Is there a free trial, and can I cancel?",
                "Every new camera or doorbell includes a 30-day free trial of Protect. Cancel any "
                "time under Account > Subscriptions with no cancellation fee.",
            ),
        ),
    ),
    (
        "The Brightnest app",
        (
            (
                "Which phones does the app support?",
                "The Brightnest app runs on iOS 16 or later and Android 10 or later.",
            ),
            (
                "How do firmware updates work?",
                "Devices update automatically overnight at around 3 a.m. local time. You can "
                "also install an update right away from the device's settings page in the app.",
            ),
            (
                "What happens when I factory reset a device?",
                "A factory reset erases the device's settings and removes it from your account, "
                "so you add it again in the Brightnest app with Add device.",
            ),
        ),
    ),
    (
        "Contacting support",
        (
            (
                "How do I reach a person?",
                f"Call {PHONE}, {SUPPORT_HOURS}. We are closed on Sundays and US federal holidays.",
            ),
            (
                "Is there live chat?",
                "Yes, in the Brightnest app and at " + SITE + ", during phone hours.",
            ),
            ("What is the support email?", f"{EMAIL}. We reply within 1 business day."),
        ),
    ),
)


def faq_md() -> str:
    parts = [f"# {COMPANY} FAQ\n\nAnswers to the questions customers ask us most.\n"]
    for section, pairs in FAQ:
        parts.append(f"## {section}\n")
        for question, answer in pairs:
            parts.append(f"### {question}\n\n{answer}\n")
    return "\n".join(parts)


def impersonal(symptom: str) -> str:
    """A customer's symptom phrasing as a document states it: "my chime" -> "the chime"."""
    return symptom.replace("my ", "the ")


def troubleshooting_md() -> str:
    parts = [
        f"""# {COMPANY} troubleshooting

Start with these general steps, then look up your product below.

## General steps

1. Check that the device shows online in the Brightnest app.
2. Most Brightnest devices that use Wi-Fi need the 2.4 GHz band; if your router combines
   2.4 GHz and 5 GHz under one name, turn on its 2.4 GHz compatibility mode during setup.
3. Restart the device (unplug it or take the batteries out for 30 seconds) and restart
   your router.
4. Install the latest firmware from the device's settings page; devices also update
   automatically overnight at around 3 a.m. local time.
5. A factory reset erases the device's settings and removes it from your account, so
   use it last and add the device again in the app afterwards.

If a device still fails after a reset, it may be defective: submit a warranty claim at
{SITE}/warranty, or contact support at {PHONE} ({SUPPORT_HOURS}) or {EMAIL}.
"""
    ]
    for p in PRODUCTS:
        parts.append(f"## {p.name}\n")
        for issue in p.issues:
            symptoms = "; ".join(f"it {impersonal(s)}" for s in issue.symptoms)
            parts.append(f"### {issue.title}\n\nSymptoms: {symptoms}.\n\n{issue.fix}\n")
        parts.append(
            f"### Factory reset\n\n{p.reset} The {p.name} has a warranty of {p.warranty} "
            f"({p.line} line).\n"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# Customer-service dialogs
# ---------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """The facts of one conversation: which product and order it is about."""

    rng: random.Random
    product: Product
    order: str
    days: int  # since delivery (returns) or since purchase (price adjustments)
    months: int  # age of the device (warranty)
    qty: int
    issue: Issue

    def it(self) -> str:
        return self.rng.choice(("it", f"the {self.product.short}"))

    def fill(self, templates: Iterable[str]) -> list[str]:
        p = self.product
        return [
            t.format(it=self.it(), short=p.short, name=p.name, a_name=p.a_name, order=self.order)
            for t in templates
        ]


Reply = tuple[list[str], list[str]]  # (user phrasings, assistant answers)
Intent = Callable[[Ctx], Reply | None]  # None: doesn't fit this conversation


def heldout_index(i: int) -> bool:
    """Every third phrasing is reserved for the validation and test splits."""
    return i % 3 == 2


def pick_wording(rng: random.Random, options: Sequence[str], heldout: bool) -> str:
    if len(options) < 3:
        raise ValueError(f"need at least 3 phrasings to hold some out: {options!r}")
    return rng.choice([o for i, o in enumerate(options) if heldout_index(i) == heldout])


GREETINGS = (
    "Hi! ",
    "Hello. ",
    "Hey there! ",
    "Good morning. ",
    "Hi Nessa. ",
    "Good evening. ",
    "Hello there! ",
    "Hey! ",
    "Good afternoon. ",
    "Hi, hope you're well. ",
    "Hiya. ",
    "Hello Nessa! ",
    "Morning! ",
    "Hi, quick question. ",
    "Hi there. ",
)
LEAD_INS = (  # neutral, so they fit after a yes and after a no
    "Okay. ",
    "Thanks. ",
    "Got it. ",
    "Makes sense. ",
    "Good to know. ",
    "Alright. ",
    "One more thing. ",
    "I see. ",
    "Thanks for that. ",
    "Understood. ",
    "Oh, okay. ",
    "Hmm, okay. ",
    "Another question. ",
    "Right. ",
    "Noted. ",
)
CLOSINGS = (
    "Great, thanks!",
    "Perfect, that's all I needed.",
    "Thanks so much for your help.",
    "Got it, appreciate it.",
    "Awesome, thank you!",
    "That helps a lot, thanks.",
    "Okay, thank you very much.",
    "Cool, thanks a lot.",
    "Thank you, that answers everything.",
)


def closing_answers(c: Ctx) -> list[str]:
    p = c.product
    return [
        f"You're welcome! If anything else comes up with your {p.short}, just ask.",
        "Happy to help. Have a great day!",
        f"My pleasure. Good luck with the {p.name}!",
    ]


# --- returns and refunds ---------------------------------------------------------------


def return_eligibility(c: Ctx) -> Reply:
    p, d = c.product, c.days
    asks = [
        f"I bought {p.a_name} {d} days ago and it's just not for me. Can I still return it?",
        f"My {p.name} was delivered {d} days ago. Am I still inside the return window?",
        f"Is it too late to send back {p.a_name}? It arrived {d} days ago.",
        f"We received our {p.name} {d} days ago and would like to return it. Is that possible?",
        f"I'd like to return the {p.name} from order {c.order}. It was delivered {d} days ago.",
        f"Can {p.a_name} that showed up {d} days ago still be returned?",
        f"I changed my mind about the {p.name} I got {d} days ago. Can I send it back?",
        f"Would you take back {p.a_name}? Delivery was {d} days ago.",
        f"Order {c.order} arrived {d} days ago with my {p.name}. Can I still return it?",
    ]
    if d <= RETURN_DAYS:
        left = RETURN_DAYS - d
        answers = [
            f"You can still return it: returns are accepted within {RETURN_DAYS} days of "
            f"delivery, so you have {left} days left to start a return for your {p.name}.",
            f"You're still within the window: returns are accepted within {RETURN_DAYS} days of "
            f"delivery, which leaves you {left} more days for the {p.name}.",
        ]
    else:
        answers = [
            f"I'm sorry, our return window is {RETURN_DAYS} days from delivery, so the {p.name} "
            f"can no longer be returned. It is still covered by its warranty of {p.warranty} "
            "if anything is defective.",
            f"Unfortunately we only accept returns within {RETURN_DAYS} days of delivery, and "
            f"yours arrived {d} days ago. If the {p.name} is faulty, its warranty of "
            f"{p.warranty} still applies.",
        ]
    return asks, answers


def start_return(c: Ctx) -> Reply | None:
    if c.days > RETURN_DAYS:
        return None
    p = c.product
    asks = [
        f"How do I start a return for my {p.name}?",
        f"I need to return {p.a_name}. What are the steps?",
        f"What's the process for sending back the {p.name} from order {c.order}?",
        f"Where do I go to return {p.a_name}?",
        f"Can you walk me through returning my {p.name}? Order {c.order}.",
        f"I want to send my {p.name} back. How does that work?",
    ]
    answers = [
        f"Go to {SITE}/returns or open Account > Orders in the Brightnest app and choose Return "
        "item. We email you a UPS return label right away, and you can drop the package at any "
        "UPS location.",
        f"You can start it at {SITE}/returns or under Account > Orders in the app. The UPS "
        "return label arrives by email right away.",
    ]
    return asks, answers


def return_conditions(c: Ctx) -> Reply | None:
    if c.days > RETURN_DAYS:
        return None
    asks = c.fill(
        [
            "Does {it} need to be in the original box?",
            "Do I have to include all the accessories with {it}?",
            "I already opened and used {it}. Is that a problem?",
            "What condition does {it} have to be in?",
            "I threw away some of the packaging. Can I still send {it} back?",
            "Anything I should do to {it} before I ship it?",
        ]
    )
    answers = [
        f"Opened and used items are fine as long as they're undamaged. {RETURN_CONDITION}",
        RETURN_CONDITION,
    ]
    return asks, answers


def return_shipping_cost(c: Ctx) -> Reply | None:
    if c.days > RETURN_DAYS:
        return None
    asks = c.fill(
        [
            "Who pays for return shipping on {it}?",
            "Is the return label free?",
            "Will it cost me anything to send {it} back?",
            "Do I get charged for the return shipping?",
            "Is there a fee to return {it}?",
            "How much does the return label cost?",
        ]
    )
    answers = [
        RETURN_LABEL,
        f"If the {c.product.short} is defective, damaged or the wrong item, the label is free. "
        f"Otherwise a {RETURN_FEE} return shipping fee comes out of your refund.",
    ]
    return asks, answers


def restocking_fee(c: Ctx) -> Reply | None:
    if c.days > RETURN_DAYS:
        return None
    asks = c.fill(
        [
            "Is there a restocking fee?",
            "Will you charge a restocking fee on {it}?",
            "Do you take a restocking fee out of the refund?",
            "Any restocking charge for returning {it}?",
        ]
    )
    answers = [
        "No, Brightnest never charges a restocking fee.",
        f"No restocking fee, ever. The only possible deduction is the {RETURN_FEE} return "
        "shipping fee when the item isn't defective.",
    ]
    return asks, answers


def refund_timing(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Once you get {it} back, how long does the refund take?",
            "When will I see the money for {it}?",
            "How quickly do refunds come through?",
            "How long until the refund hits my card?",
            "How many days until I'm refunded for {it}?",
            "When would the refund show up?",
        ]
    )
    answers = [
        REFUND_TIMING,
        "We refund your original payment method within 5 business days after the return "
        "reaches our warehouse; your bank may need 3 to 5 more business days.",
    ]
    return asks, answers


def store_credit(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Could I take store credit instead of a refund?",
            "Is there any benefit to choosing store credit for {it}?",
            "Can I get credit on my account rather than money back?",
            "What if I'd rather have store credit?",
            "Do you offer store credit for returns?",
            "Would store credit be faster than a refund?",
        ]
    )
    answers = [
        STORE_CREDIT,
        "Store credit comes with a 10% bonus and is added within 1 business day of the "
        "return arriving at our warehouse.",
    ]
    return asks, answers


def exchange(c: Ctx) -> Reply | None:
    if c.days > RETURN_DAYS:
        return None
    asks = c.fill(
        [
            "Actually, can I swap {it} for a different model instead?",
            "Could I exchange {it} rather than return it?",
            "Is an exchange possible, and does it cost anything?",
            "What if I want a different color instead of a refund?",
            "Can I trade {it} for something else in your store?",
            "How do exchanges work?",
        ]
    )
    answers = [
        f"Exchanges are free within {RETURN_DAYS} days of delivery, and we ship the "
        "replacement as soon as the carrier scans your return.",
        f"Of course. Exchanging the {c.product.short} is free within {RETURN_DAYS} days of "
        "delivery, and the new item ships once your return is scanned by the carrier.",
    ]
    return asks, answers


def original_shipping_refund(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Will I get back the shipping I paid on {it} too?",
            "Is the original shipping charge refunded?",
            "Do I get the delivery fee back as well?",
            "What about the shipping cost from the original order?",
            "Is the shipping I paid refundable?",
            "Does the refund include what I paid for shipping?",
        ]
    )
    answers = [
        "Original shipping charges are refunded only if the item was defective or the mistake "
        "was ours.",
        "Only if the item was defective or we made a mistake; otherwise the original shipping "
        "charge isn't refunded.",
    ]
    return asks, answers


def out_of_window_claim(c: Ctx) -> Reply | None:
    if c.days <= RETURN_DAYS:
        return None
    asks = c.fill(
        [
            "It actually stopped working properly. How do I use the warranty on {it}?",
            "Okay, so how would I make a warranty claim instead?",
            "{it} has a fault though. What's the warranty process?",
            "How do I file a warranty claim then?",
            "Then what do I need for a warranty claim?",
            "Where do I submit a warranty claim for {it}?",
        ]
    )
    asks = [a[0].upper() + a[1:] for a in asks]
    answers = [
        f"Submit the form at {SITE}/warranty with your order number and the serial number. "
        "Claims are reviewed within 2 business days.",
        f"Please fill in the warranty form at {SITE}/warranty with your order number and the "
        f"{c.product.short}'s serial number; we review claims within 2 business days.",
    ]
    return asks, answers


def refund_status(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I sent back my {p.name} (order {c.order}) last week. When will I see my refund?",
        f"My return of {p.a_name} should be at your warehouse by now. When do I get my money?",
        f"How long does it take to get refunded for a returned {p.name}?",
        f"I returned the {p.name} from order {c.order}. What's the refund timeline?",
        f"Our {p.name} went back to you a few days ago. When is the refund coming?",
        f"I mailed back {p.a_name}. How long will the refund take?",
    ]
    answers = [
        REFUND_TIMING,
        f"Once your {p.name} reaches our warehouse, we refund your original payment method "
        "within 5 business days, and your bank may take 3 to 5 more business days.",
    ]
    return asks, answers


def refund_deduction(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"Why was my refund for the {p.name} {RETURN_FEE} less than I paid?",
        f"My refund for order {c.order} ({p.a_name}) is short by {RETURN_FEE}. Why?",
        f"You refunded my {p.name} but took off {RETURN_FEE}. What is that charge?",
        f"There's a {RETURN_FEE} deduction on my {p.name} refund. What's that for?",
        f"Why did I get less back than I paid for the {p.name}?",
        f"The refund on my {p.name} is missing {RETURN_FEE}. Can you explain?",
    ]
    answers = [
        f"That's the {RETURN_FEE} return shipping fee, which is deducted when an item isn't "
        "defective. Returns of defective, damaged or wrong items are free.",
        f"For returns that aren't defective, damaged or wrong items, a {RETURN_FEE} return "
        "shipping fee is deducted from the refund.",
    ]
    return asks, answers


def refund_notification(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "How will I know the refund has gone through?",
            "Will you tell me when the refund for {it} is issued?",
            "Where can I check the refund status?",
            "Is there a way to see if the refund is processed?",
            "Do I get an email when the money is sent?",
            "How can I follow the refund?",
        ]
    )
    answers = [
        "We send you an email when the refund is issued, and its status is shown under "
        "Account > Orders.",
        "You'll get an email as soon as the refund is issued; you can also check it under "
        "Account > Orders.",
    ]
    return asks, answers


def points_on_return(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "What happens to the reward points I earned on {it}?",
            "Do I keep my Brightnest Rewards points after returning {it}?",
            "Will my rewards balance change because of the return?",
            "Are the points from that purchase taken back?",
            "Do returns affect my rewards points?",
            "What about the points I got for buying {it}?",
        ]
    )
    answers = [
        "Brightnest Rewards points earned on a returned item are removed from your balance.",
        "The points you earned on a returned item are removed from your Brightnest Rewards "
        "balance.",
    ]
    return asks, answers


def bank_delay(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "It's been 5 business days since you got it and I still don't see anything.",
            "Your email says the refund was issued but my bank shows nothing. Why?",
            "The refund still isn't on my card. Should I worry?",
            "What if the refund for {it} still hasn't appeared on my statement?",
            "My bank statement doesn't show the refund yet. What now?",
            "Still no refund on my card. What should I do?",
        ]
    )
    answers = [
        f"Banks can take 3 to 5 more business days to show a refund. If it still isn't there "
        f"after that, email {EMAIL} with your order number and we'll trace it.",
        f"Your bank may need 3 to 5 more business days to post it; if it's still missing after "
        f"that, contact us at {EMAIL} or {PHONE}.",
    ]
    return asks, answers


# --- warranty ------------------------------------------------------------------------


def warranty_length(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I just bought {p.a_name}. How long is the warranty on it?",
        f"What warranty comes with the {p.name}?",
        f"How many years of warranty does the {p.name} have?",
        f"Is the {p.name} I ordered (order {c.order}) covered by a warranty, and for how long?",
        f"How long is my {p.name} under warranty?",
        f"What's the warranty period for the {p.name}?",
        f"My new {p.name} arrived today. What's the warranty like?",
        f"Could you tell me the warranty length for the {p.name}?",
        f"For how long is the {p.name} covered if something goes wrong?",
    ]
    answers = [
        f"The {p.name} is part of our {p.line} line, which has a warranty of {p.warranty} from "
        "the delivery date.",
        f"Your {p.name} is covered for {p.warranty} from delivery against defects in materials "
        "and workmanship.",
    ]
    return asks, answers


def warranty_age(c: Ctx) -> Reply:
    p, m = c.product, c.months
    asks = [
        f"My {p.name} stopped working and I've had it for {m} months. Is it still under warranty?",
        f"I bought {p.a_name} {m} months ago and now it's broken. Am I covered?",
        f"Is {p.a_name} that's {m} months old still in warranty?",
        f"The {p.name} we got {m} months ago has failed. Can I get it replaced under warranty?",
        f"After {m} months my {p.name} has died. Does the warranty still apply?",
        f"Does the warranty cover my {p.name}? It's {m} months old and acting up.",
    ]
    if m <= p.warranty_months:
        answers = [
            f"Yes, the {p.name} has a warranty of {p.warranty} from delivery, so at {m} months "
            f"you're still covered. You can file a claim at {SITE}/warranty.",
            f"Good news: the {p.name} is covered for {p.warranty}, so a {m}-month-old device is "
            "still under warranty.",
        ]
    else:
        answers = [
            f"I'm sorry, the {p.name} has a warranty of {p.warranty}, so after {m} months it's "
            f"no longer covered. Our support team at {PHONE} can still help you troubleshoot.",
            f"Unfortunately the warranty on the {p.name} lasts {p.warranty} from delivery, and "
            f"at {m} months it has ended. We're happy to help troubleshoot it, though.",
        ]
    return asks, answers


def warranty_coverage(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Does the warranty cover it if I drop {it}?",
            "What exactly does the warranty cover?",
            "Would water damage to {it} be covered?",
            "Is accidental damage included in the warranty?",
            "If I crack {it}, does the warranty help?",
            "What isn't covered by the warranty?",
        ]
    )
    answers = [
        "The standard warranty covers defects in materials and workmanship, not accidental "
        "damage such as drops or water damage. CarePlus adds accidental damage coverage.",
        "It covers defects in materials and workmanship. Drops, cracked screens, water damage "
        "beyond the rating and misuse aren't covered unless you add CarePlus.",
    ]
    return asks, answers


def warranty_claim(c: Ctx) -> Reply | None:
    if c.months > c.product.warranty_months:
        return None
    asks = c.fill(
        [
            "How do I file a claim for {it}?",
            "What do I need to start a warranty claim?",
            "Where do I submit the warranty request?",
            "What's the process to get {it} replaced?",
            "How do I make a warranty claim?",
            "Can you tell me how the claim works?",
        ]
    )
    answers = [
        f"Submit the form at {SITE}/warranty with your order number and the serial number. "
        "Claims are reviewed within 2 business days, and the replacement ships within 3 "
        "business days of approval.",
        f"Fill in the claim form at {SITE}/warranty with your order number and the "
        f"{c.product.short}'s serial number; we review it within 2 business days.",
    ]
    return asks, answers


def replacement_time(c: Ctx) -> Reply | None:
    if c.months > c.product.warranty_months:
        return None
    asks = c.fill(
        [
            "How long until I get a replacement?",
            "Once I file, when would the new {short} arrive?",
            "Do I pay shipping for the warranty replacement?",
            "How fast do you ship a replacement under warranty?",
            "What does the warranty replacement cost me in shipping?",
            "When does the replacement ship?",
        ]
    )
    answers = [
        "Claims are reviewed within 2 business days, and the replacement ships within 3 "
        "business days of approval, with free shipping both ways.",
        "We review the claim within 2 business days and ship the replacement within 3 "
        "business days of approval; shipping is free both ways.",
    ]
    return asks, answers


def careplus(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I extend the warranty on {it}?",
            "Do you sell extended coverage?",
            "Is there a way to get accidental damage protection for {it}?",
            "How much is CarePlus?",
            "What extra protection plans do you have for {it}?",
            "Is it too late to buy an extended warranty?",
        ]
    )
    answers = [
        CAREPLUS,
        "CarePlus adds 2 years to the standard warranty plus accidental damage coverage, for "
        "$29 per device; buy it within 60 days of delivery.",
    ]
    return asks, answers


def serial_number(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Where do I find the serial number on {it}?",
            "The claim form wants a serial number. Where is it?",
            "How do I look up the serial number of the {short}?",
            "Where's the serial printed?",
            "I can't find the serial number on {it}. Help?",
            "Is the serial number shown in the app?",
        ]
    )
    answers = [
        "The serial number is on the label on the back or bottom of the device, and in the "
        "Brightnest app under Settings > Device info.",
        f"Check the label on the back or bottom of the {c.product.short}, or open Settings > "
        "Device info in the Brightnest app.",
    ]
    return asks, answers


# --- shipping, tracking, cancellations -------------------------------------------------

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


def shipping_cost(c: Ctx) -> Reply:
    p, q = c.product, c.qty
    item = p.a_name if q == 1 else f"{NUMBER_WORDS[q]} of the {p.short}s"
    asks = [
        f"I'm about to order {item}. What will shipping cost?",
        f"How much is shipping if I buy {item}?",
        f"If I order {item}, do I get free shipping?",
        f"I'd like {item}. What are the shipping charges?",
        f"What would delivery cost on an order of {item}?",
        f"Thinking of getting {item}. Is shipping extra?",
    ]
    if q * p.price_value >= FREE_SHIPPING_MIN:
        answers = [
            f"Good news: orders of ${FREE_SHIPPING_MIN} or more get free Standard shipping, "
            "which takes 3 to 5 business days, so yours ships free.",
            f"Your order is over the ${FREE_SHIPPING_MIN} minimum, so Standard shipping (3 to 5 "
            "business days) is free.",
        ]
    else:
        answers = [
            "Standard shipping is $5.99 and takes 3 to 5 business days; orders of "
            f"${FREE_SHIPPING_MIN} or more ship free.",
            f"That order is under ${FREE_SHIPPING_MIN}, so Standard shipping costs $5.99 (3 to 5 "
            f"business days). Add more items to reach ${FREE_SHIPPING_MIN} and it's free.",
        ]
    return asks, answers


def shipping_speed(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"How quickly can you get {p.a_name} to me?",
        f"What shipping options do you have for the {p.name}?",
        f"I need the {p.name} soon. How fast can you deliver?",
        f"What are the delivery times for {p.a_name}?",
        f"How long will {p.a_name} take to arrive?",
        f"Which shipping speeds can I pick for the {p.name}?",
    ]
    answers = [
        SHIPPING_OPTIONS,
        f"You can choose Standard (3 to 5 business days, $5.99, free on orders of "
        f"${FREE_SHIPPING_MIN} or more), Expedited (2 business days, $12.99) or Overnight (next "
        "business day, $24.99).",
    ]
    return asks, answers


def overnight(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "What if I need {it} tomorrow?",
            "Can you do overnight delivery?",
            "Is next-day shipping possible?",
            "How much is overnight?",
            "Any chance {it} could get here tomorrow?",
            "What's the latest I can order for next-day delivery?",
        ]
    )
    answers = [
        "Overnight shipping costs $24.99 and arrives the next business day if you order by 2 "
        "p.m. Eastern Time.",
        "Overnight is $24.99 for next-business-day delivery, as long as you order by 2 p.m. "
        "Eastern Time and it isn't going to a PO box.",
    ]
    return asks, answers


def expedited(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "And what does expedited cost?",
            "Is there something between standard and overnight?",
            "How fast is expedited shipping?",
            "What's the price for 2-day shipping?",
            "Could I get {it} in two days?",
            "Tell me about expedited delivery.",
        ]
    )
    answers = [
        "Expedited shipping costs $12.99 and takes 2 business days.",
        "Expedited is $12.99 and arrives in 2 business days; Gold members of Brightnest Rewards "
        "get it free.",
    ]
    return asks, answers


def ship_cutoff(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "When would {it} leave your warehouse?",
            "If I order today, when does it ship?",
            "Do orders ship the same day?",
            "What's the cutoff for same-day shipping?",
            "How soon after I order does {it} get shipped?",
            "When do you actually send orders out?",
        ]
    )
    answers = [
        "Orders placed before 2 p.m. Eastern Time on a business day ship the same day; later "
        "orders ship the next business day.",
        "If you order before 2 p.m. Eastern Time on a business day, it ships that day from our "
        "warehouse in Reno, Nevada; otherwise it ships the next business day.",
    ]
    return asks, answers


def alaska_hawaii(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "I live in Hawaii. Does that change anything?",
            "Can you ship {it} to Alaska?",
            "Do you deliver to Hawaii, and how long does it take?",
            "I'm in Anchorage. Can I still order {it}?",
            "What about shipping to Alaska or Hawaii?",
            "Is overnight available to Honolulu?",
        ]
    )
    answers = [
        "We ship to Alaska and Hawaii with Standard shipping only, which takes 6 to 10 business "
        "days.",
        "We do ship there, but only with Standard shipping, which takes 6 to 10 business days "
        "to Alaska and Hawaii.",
    ]
    return asks, answers


def international(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Do you ship to Canada?",
            "Could you send {it} to my sister in Toronto?",
            "Can I order from outside the US?",
            "Is international shipping available?",
            "My brother lives in Mexico. Can you ship {it} there?",
            "Do you deliver overseas?",
        ]
    )
    answers = [
        "Sorry, we only ship within the 50 US states and don't ship internationally, including "
        "to Canada.",
        "I'm afraid not: Brightnest ships to all 50 US states but not internationally.",
    ]
    return asks, answers


def free_shipping_rules(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Does tax count toward the free shipping minimum?",
            "Is the free shipping threshold before or after discounts?",
            "How exactly is the free shipping minimum calculated?",
            "If I use a coupon, do I still get free shipping?",
            "What counts toward the free shipping amount?",
            "Is the free shipping limit based on the total with tax?",
        ]
    )
    answers = [
        f"The ${FREE_SHIPPING_MIN} free shipping minimum is based on your order subtotal after "
        "discounts and before tax.",
        f"It's your subtotal after discounts and before tax that needs to reach "
        f"${FREE_SHIPPING_MIN}.",
    ]
    return asks, answers


def where_is_order(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"Where is my order {c.order}? It's {p.a_name}.",
        f"Can you tell me how to track order {c.order}? I ordered the {p.name}.",
        f"I'm waiting for {p.a_name}, order {c.order}. How can I see where it is?",
        f"How do I check the delivery status of my {p.name}? The order is {c.order}.",
        f"Any update on {c.order}? It's my {p.name}.",
        f"I want to track the {p.name} I bought. Order number {c.order}.",
    ]
    answers = [
        f"You can follow order {c.order} under Account > Orders at {SITE}/orders or in the "
        "Brightnest app, and the shipping confirmation email has the tracking number.",
        f"Open Account > Orders at {SITE}/orders and select {c.order}; the tracking number is "
        "also in your shipping confirmation email.",
    ]
    return asks, answers


def no_shipping_email(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I ordered {p.a_name} yesterday (order {c.order}) and haven't gotten a shipping email.",
        f"No shipping confirmation yet for my {p.name}, order {c.order}. Is that normal?",
        f"When will my {p.name} ship? Order {c.order} still says processing.",
        f"I placed order {c.order} for the {p.name} last night. When does it go out?",
        f"Has my {p.name} shipped yet? It's order {c.order}.",
        f"Still waiting on a shipping email for the {p.name} (order {c.order}).",
    ]
    answers = [
        "Orders placed before 2 p.m. Eastern Time on a business day ship the same day, and "
        "later ones ship the next business day. The shipping confirmation email with tracking "
        "goes out as soon as it leaves our warehouse.",
        f"Order {c.order} ships the same business day if it was placed before 2 p.m. Eastern "
        "Time, otherwise the next business day; you'll get the tracking email then.",
    ]
    return asks, answers


def tracking_not_updating(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "The tracking link hasn't changed since yesterday. Is something wrong?",
            "Tracking for {it} shows nothing yet even though I got the email.",
            "Why does the tracking page say no information?",
            "The carrier site doesn't recognize my tracking number.",
            "Tracking looks stuck. Should I be worried?",
            "I got the shipping email but tracking is blank.",
        ]
    )
    answers = [
        "Tracking can take up to 24 hours to update after the shipping email arrives, so "
        "please check again tomorrow.",
        "That's normal at first: tracking can take up to 24 hours to update after the "
        "shipping email.",
    ]
    return asks, answers


def damaged_on_arrival(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "If {it} arrives damaged, what should I do?",
            "What happens if the box shows up crushed?",
            "{it} came with a cracked case. Now what?",
            "How long do I have to report shipping damage?",
            "The package was damaged in transit. Can you help?",
            "What if {it} is broken when it gets here?",
        ]
    )
    asks = [a[0].upper() + a[1:] for a in asks]
    answers = [
        "Please report it within 7 days of delivery with a photo, and we'll send you a free "
        "replacement.",
        "Send us a photo within 7 days of delivery and we'll ship a free replacement.",
    ]
    return asks, answers


def missing_package(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Tracking says delivered but there's nothing at my door.",
            "It shows as delivered, but I never got {it}.",
            "The carrier marked it delivered. Where is it?",
            "What if the package is marked delivered but missing?",
            "My porch is empty even though tracking says delivered.",
            "Delivered, apparently, but no box anywhere. Help?",
        ]
    )
    answers = [
        "Please check around your door and with neighbors. If it hasn't turned up after 48 "
        "hours, contact us and we'll send a replacement or a refund.",
        "Give it 48 hours, since carriers sometimes mark packages early. If it's still missing "
        "after that, contact us and we'll send a replacement or a refund.",
    ]
    return asks, answers


def order_number_format(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Where do I find my order number?",
            "What does a Brightnest order number look like?",
            "I can't find my order number. What format is it?",
            "Which number is the order number on my receipt?",
            "How do I know which code is the order number?",
            "What's the format of your order numbers?",
        ]
    )
    answers = [
        "Order numbers start with BN- followed by 7 digits, and you'll find yours in the order "
        "confirmation email.",
        "Look for a number that starts with BN- followed by 7 digits in your confirmation "
        "email or under Account > Orders.",
    ]
    return asks, answers


def change_address(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I change the shipping address instead?",
            "I put the wrong address on the order. Can I fix it?",
            "Is it possible to send {it} to my office instead?",
            "How do I update the delivery address?",
            "Can the order go to a different address?",
            "I moved last week. Can I change where {it} ships?",
        ]
    )
    answers = [
        "You can within 1 hour of placing the order, as long as it hasn't shipped: open Account > "
        "Orders and choose Edit address. After that, please contact support.",
        "You can edit the address under Account > Orders within 1 hour of ordering if it "
        f"hasn't shipped; after that, call {PHONE} and we'll try to help.",
    ]
    return asks, answers


def cancel_order(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I ordered {p.a_name} by mistake a few minutes ago, order {c.order}. Can I cancel?",
        f"How do I cancel order {c.order}? I just bought the {p.name} and changed my mind.",
        f"Oops, I ordered two {p.short}s instead of one (order {c.order}). Can I cancel?",
        f"Please cancel my order {c.order} for the {p.name}. I placed it ten minutes ago.",
        f"Is it too late to cancel the {p.name} I ordered just now? Order {c.order}.",
        f"I'd like to cancel {c.order}, the {p.name}. It was placed half an hour ago.",
    ]
    answers = [
        "As long as it hasn't shipped, you can cancel within 1 hour of placing it: go to "
        f"Account > Orders, open {c.order} and choose Cancel order.",
        f"You can cancel {c.order} yourself within 1 hour of ordering, if it hasn't shipped, "
        "under Account > Orders > Cancel order.",
    ]
    return asks, answers


def cancel_late(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"Can I still cancel order {c.order}? I placed it this morning. It's {p.a_name}.",
        f"I ordered the {p.name} yesterday (order {c.order}) and want to cancel. Possible?",
        f"It's been a few hours since I ordered {p.a_name}, order {c.order}. Can I cancel now?",
        f"I need to cancel {c.order} for the {p.name}; I ordered it three hours ago.",
        f"Can you still stop order {c.order}? It's the {p.name} from this morning.",
        f"How do I cancel the {p.name} I ordered last night? Order {c.order}.",
    ]
    answers = [
        "Orders can be cancelled in the app or on the website within 1 hour of placing them. "
        f"After that, contact us at {PHONE} or {EMAIL} and we'll try to stop it; if it has "
        f"already shipped, you can return it within {RETURN_DAYS} days of delivery.",
        f"Self-service cancellation is only possible within 1 hour of ordering, so please call "
        f"{PHONE} and we'll try to stop {c.order}. If it has shipped, you can return it within "
        f"{RETURN_DAYS} days.",
    ]
    return asks, answers


def cancel_refund(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "When would I get my money back after cancelling?",
            "Will I be charged for the cancelled order?",
            "There's a pending charge for {it}. When does it go away?",
            "How long until the cancelled payment is released?",
            "Do I need to do anything about the charge on my card?",
            "Is my card refunded right away when I cancel?",
        ]
    )
    answers = [
        "A cancelled order is never charged; the pending authorization on your card is "
        "released within 3 business days.",
        "You won't be charged: the pending authorization drops off your card within 3 "
        "business days.",
    ]
    return asks, answers


def after_shipped(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "What if it has already shipped?",
            "And if {it} is already on its way?",
            "Suppose it shipped already. Then what?",
            "What are my options once {it} is in transit?",
            "If you can't stop it, can I send {it} back?",
            "And if it's too late to cancel?",
        ]
    )
    answers = [
        f"Then you can return it within {RETURN_DAYS} days of delivery through {SITE}/returns.",
        f"Once it has shipped, just return it within {RETURN_DAYS} days of delivery; start the "
        "return under Account > Orders.",
    ]
    return asks, answers


# --- account -------------------------------------------------------------------------


def password_reset(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I can't sign in to manage my {p.name}. How do I reset my password?",
        f"Forgot my password and need to check on my {p.name}. What do I do?",
        f"How can I reset my Brightnest password? I'm locked out of my {p.name} settings.",
        f"I need a new password for the account my {p.name} is on.",
        f"My password isn't working and I want to adjust the {p.name}. Help?",
        f"What's the way to reset a forgotten password? I need to get to my {p.name}.",
    ]
    answers = [
        PASSWORD_RESET,
        f"Go to {SITE}/reset or tap Forgot password? on the sign-in page; the reset link we "
        "email you is valid for 30 minutes.",
    ]
    return asks, answers


def locked_out(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"The app says my account is locked and I need to check my {p.name}.",
        f"Why is my account locked? I just wanted to open the {p.name}.",
        f"I tried my password a bunch of times and now I'm locked out of my {p.name}.",
        f"My Brightnest account got locked while I was setting up the {p.name}. How long?",
        f"Account locked message when I sign in to see my {p.name}. What happened?",
        f"I'm locked out of the account that runs my {p.name}. How do I get back in?",
    ]
    answers = [
        f"{LOCKOUT} Wait 15 minutes and try again, or use Forgot password? to reset it.",
        "For security, 5 failed sign-in attempts lock the account for 15 minutes. After that "
        f"you can sign in again or reset your password at {SITE}/reset.",
    ]
    return asks, answers


def reset_email_missing(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "I didn't get the reset email.",
            "No reset email has arrived. What now?",
            "Where's the password email? My inbox is empty.",
            "I've been waiting for the reset link and nothing came.",
            "The reset email never showed up.",
            "Still no email with the link.",
        ]
    )
    answers = [
        "Please check your spam or junk folder for a message from no-reply@brightnesthome.com "
        "and request a new link. If nothing arrives within 10 minutes, contact support.",
        "Check spam for no-reply@brightnesthome.com first. If nothing arrives within 10 "
        f"minutes of a new request, email {EMAIL}.",
    ]
    return asks, answers


def link_expired(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "The link says it expired. Why?",
            "I clicked the reset link this morning and it doesn't work anymore.",
            "How long is the reset link good for?",
            "The password link is expired already. What do I do?",
            "Does the reset link expire?",
            "My reset link stopped working.",
        ]
    )
    answers = [
        "Reset links are valid for 30 minutes, so just request a new one from the sign-in page.",
        "The link expires after 30 minutes for security. Request a fresh one and use it right "
        "away.",
    ]
    return asks, answers


def two_step(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I add two-factor authentication to my account?",
            "How do I make my account more secure?",
            "Is there two-step verification?",
            "Where do I turn on 2FA?",
            "I want a second login step to protect my {short}. Possible?",
            "Do you support two-step sign-in?",
        ]
    )
    answers = [
        "Turn on two-step verification under Account > Security in the Brightnest app or on the "
        "website.",
        f"You can enable two-step verification under Account > Security, in the app or on {SITE}.",
    ]
    return asks, answers


def change_email(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I change the email address on my account?",
            "I'd like my account under a different email. How?",
            "How do I update my login email?",
            "My old email is gone. Can I switch to a new one?",
            "Where do I change my account email?",
            "Can I move my account to my work email?",
        ]
    )
    answers = [
        "You can change it under Account > Profile; we send a confirmation link to the new "
        "address before the change takes effect.",
        "Go to Account > Profile and enter the new address; it takes effect once you click the "
        "confirmation link we send there.",
    ]
    return asks, answers


def share_access(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can my partner control {it} too?",
            "How do I give my family access to {it}?",
            "Can I share the {short} with my roommates?",
            "How many people can use our Brightnest devices?",
            "Is it possible for my kids to use {it} from their phones?",
            "Can I add household members to my account?",
        ]
    )
    answers = [
        "You can invite up to 10 household members under Settings > Household in the "
        "Brightnest app; each signs in with their own account.",
        "You can invite up to 10 household members under Settings > Household, and they'll "
        f"be able to control the {c.product.short} from their own accounts.",
    ]
    return asks, answers


# --- rewards, pricing, subscriptions -------------------------------------------------


def rewards_intro(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I just bought {p.a_name}. Do you have a loyalty program?",
        f"Do I earn anything for buying the {p.name}? Like rewards points?",
        f"Is there a rewards scheme? I've bought {p.a_name} and a few other things from you.",
        f"I'm ordering the {p.name}. Tell me about your rewards program.",
        f"Does Brightnest have a points program? I'm a repeat customer, most recently the "
        f"{p.name}.",
        f"What rewards do I get for shopping with you? I just got the {p.name}.",
    ]
    answers = [
        REWARDS,
        "Our loyalty program is Brightnest Rewards, free to join: you earn 1 point for every $1 "
        "you spend, and every 100 points is worth $5 off at checkout.",
    ]
    return asks, answers


def points_earned(c: Ctx) -> Reply:
    p = c.product
    points = int(p.price_value)
    asks = [
        f"How many reward points will I get for the {p.name} I bought?",
        f"I'm a Brightnest Rewards member. What do I earn on {p.a_name}?",
        f"How many points is the {p.name} worth?",
        f"If I buy the {p.name} at {p.price}, how many points do I get?",
        f"Does the {p.name} earn rewards points, and how many?",
        f"What will my points balance go up by after buying {p.a_name}?",
    ]
    answers = [
        f"You earn 1 point per $1 spent, so the {p.name} at {p.price} earns {points} points, "
        "which post 14 days after delivery.",
        f"At 1 point per $1, the {p.name} ({p.price}) earns {points} points; they show up 14 "
        "days after delivery.",
    ]
    return asks, answers


def points_post(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "When will the points from the {short} show up?",
            "How long until my points appear?",
            "My points aren't in my account yet. Why?",
            "When do I get the points for this order?",
            "Are the points added right away?",
            "When can I see the new points?",
        ]
    )
    answers = [
        "Points post to your account 14 days after delivery.",
        "They appear 14 days after delivery, once the order is settled.",
    ]
    return asks, answers


def gold_status(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "What's Gold status?",
            "Is there a higher tier in the rewards program?",
            "How do I become a Gold member?",
            "What do I get if I spend a lot?",
            "Are there perks beyond the points?",
            "How many points do I need for Gold?",
        ]
    )
    answers = [GOLD, f"Gold is the top status in Brightnest Rewards. {GOLD}"]
    return asks, answers


def points_expiry(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Do points expire?",
            "How long do my points last?",
            "Will I lose my points if I don't use them?",
            "Is there an expiry date on the rewards?",
            "If I don't shop for a while, what happens to my points?",
            "Can my points run out?",
        ]
    )
    answers = [
        "Points expire after 12 months without a purchase.",
        "They stay as long as you make a purchase at least once every 12 months; after 12 "
        "months without a purchase they expire.",
    ]
    return asks, answers


def birthday_points(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Do members get anything on their birthday?",
            "Is there a birthday bonus?",
            "Any birthday perks in the program?",
            "My birthday is next week. Do I get a treat?",
            "Do you give birthday rewards?",
            "Is there something special for my birthday?",
        ]
    )
    answers = [
        "Yes, Brightnest Rewards members get 200 bonus points on their birthday.",
        "You get 200 bonus points on your birthday.",
    ]
    return asks, answers


def redeem_points(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "How do I use my points?",
            "Can I spend points on my next order?",
            "How do I redeem rewards at checkout?",
            "What are my points worth?",
            "How do points turn into a discount?",
            "Can I use points to pay for part of an order?",
        ]
    )
    answers = [
        "Redeem them at checkout in blocks of 100 points, and every 100 points is worth $5 off.",
        "At checkout, every 100 points takes $5 off your order.",
    ]
    return asks, answers


def price_adjustment(c: Ctx) -> Reply:
    p, d = c.product, c.days
    asks = [
        f"I bought {p.a_name} for {p.price} {d} days ago and now it's on sale. Can I get the "
        "difference back?",
        f"The {p.name} dropped in price {d} days after I ordered it. Do you refund the difference?",
        f"Do you do price adjustments? I paid full price for the {p.name} {d} days ago.",
        f"It's been {d} days since I bought my {p.name}, and it's cheaper now. Any refund?",
        f"My {p.name} is on sale now, {d} days after I paid {p.price}. Can you match it?",
        f"Can I claim the lower price on the {p.name}? I ordered it {d} days ago.",
    ]
    if d <= PRICE_ADJUST_DAYS:
        answers = [
            f"Yes! If the price drops within {PRICE_ADJUST_DAYS} days of purchase, we refund the "
            "difference once per item. Just contact support with your order number.",
            f"You're within the {PRICE_ADJUST_DAYS} days, so we'll refund the difference on the "
            f"{p.name}. Contact support with your order number to claim it.",
        ]
    else:
        answers = [
            f"I'm sorry, price adjustments are only available within {PRICE_ADJUST_DAYS} days of "
            f"purchase, and the {p.name} was bought {d} days ago.",
            f"Unfortunately we only refund price differences within {PRICE_ADJUST_DAYS} days of "
            f"purchase, so the {p.name} no longer qualifies.",
        ]
    return asks, answers


def payment_methods(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"What payment methods can I use to buy {p.a_name}?",
        f"Can I pay for the {p.name} with PayPal?",
        f"Which cards do you take? I want to order the {p.name}.",
        f"Do you accept Apple Pay for the {p.name}?",
        f"How can I pay for {p.a_name}?",
        f"Is Google Pay an option for buying the {p.name}?",
    ]
    answers = [
        "We accept Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, Google Pay "
        "and Brightnest gift cards.",
        "You can pay with Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, "
        "Google Pay or a Brightnest gift card.",
    ]
    return asks, answers


def klarna(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I split the payment for {it}?",
            "Do you offer installments?",
            "Is there a buy now, pay later option?",
            "Can I pay over time?",
            "Could I pay for {it} in a few parts?",
            "Do you work with Klarna?",
        ]
    )
    answers = [
        "On orders over $100 you can pay in 4 interest-free payments with Klarna.",
        "Yes, orders over $100 can be split into 4 interest-free payments with Klarna.",
    ]
    return asks, answers


def gift_cards(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Do Brightnest gift cards expire?",
            "Can I use a gift card for {it}?",
            "I have an old gift card. Is it still good?",
            "How long are gift cards valid?",
            "Can I return a gift card?",
            "Will my gift card balance run out after a year?",
        ]
    )
    answers = [
        "Brightnest gift cards never expire and can be used on any order, but they can't be "
        "returned.",
        "They never expire, so any remaining balance is still good; gift cards can't be "
        "returned, though.",
    ]
    return asks, answers


def price_match(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Another store has {it} cheaper. Will you match it?",
            "Do you price match other retailers?",
            "I saw the {short} for less elsewhere. Can you match that?",
            "Would you match a competitor's price?",
            "Is there a price-match guarantee?",
            "Can I get the lower price I found at another shop?",
        ]
    )
    answers = [
        "We don't match other retailers' prices, but if our own price drops within "
        f"{PRICE_ADJUST_DAYS} days of purchase, we refund the difference once per item.",
        "Sorry, we don't match other retailers. We do refund the difference if our own price "
        f"drops within {PRICE_ADJUST_DAYS} days of purchase.",
    ]
    return asks, answers


def protect_needed(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"Do I need a subscription to use my {p.name}?",
        f"Is a monthly plan required for the {p.name}?",
        f"Does the {p.name} work without paying for a plan?",
        f"I just got {p.a_name}. Do I have to subscribe to anything?",
        f"What do I get with the {p.name} if I don't pay monthly?",
        f"Is there a subscription fee for the {p.name}?",
    ]
    if p.name == "Vista Cam Indoor":
        free = "you get live view, motion alerts and recording to a microSD card for free"
    else:
        free = "you get live view and motion alerts for free"
    answers = [
        f"The {p.name} works without a plan: {free}. {PROTECT}",
        f"A plan is optional: {free}. Brightnest Protect adds 30 days of cloud video history for "
        "$3.99 per month per device.",
    ]
    return asks, answers


def protect_price(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"How much is Brightnest Protect for {p.a_name}?",
        f"What does the subscription cost for my {p.name}?",
        f"What's the monthly price of cloud recording on the {p.name}?",
        f"I want to save video from my {p.name}. How much is the plan?",
        f"How much would Protect cost me for the {p.name}?",
        f"What's the price of video history for the {p.name}?",
    ]
    answers = [f"{PROTECT} {PROTECT_PLUS}", PROTECT]
    return asks, answers


def protect_trial(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Is there a free trial?",
            "Can I try Protect before paying for {it}?",
            "Do new cameras come with a trial?",
            "Does {it} include any free Protect time?",
            "Could I test the plan first?",
            "How long is the Protect trial?",
        ]
    )
    answers = [
        "Every new camera or doorbell includes a 30-day free trial of Protect.",
        f"Your {c.product.name} comes with a 30-day free trial of Protect.",
    ]
    return asks, answers


def protect_cancel(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I cancel anytime?",
            "Is there a fee to cancel Protect?",
            "How do I stop the subscription?",
            "If I cancel, when does it end?",
            "Am I locked into a contract?",
            "Where do I cancel the plan for {it}?",
        ]
    )
    answers = [
        "You can cancel any time under Account > Subscriptions with no cancellation fee; the "
        "plan stays active until the end of the billing month.",
        "There's no contract: cancel under Account > Subscriptions, with no fee, and Protect "
        "stays on until the end of the billing month.",
    ]
    return asks, answers


def protect_multiple(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "What if I have several cameras?",
            "I'm adding a second {short}. Is there a bundle plan?",
            "Is there a plan for all my cameras together?",
            "Do I pay $3.99 for each device?",
            "We have four cameras. What's the best plan?",
            "Is there a multi-camera subscription?",
        ]
    )
    answers = [
        f"{PROTECT_PLUS} A single device is $3.99 per month.",
        "Protect is $3.99 per month per device, or Protect Plus covers unlimited devices for "
        "$9.99 per month.",
    ]
    return asks, answers


def local_storage(c: Ctx) -> Reply:
    p = c.product
    asks = c.fill(
        [
            "Can I save clips from {it} without the plan?",
            "Is there local storage on the {short}?",
            "Does {it} take a memory card?",
            "Can I record without paying monthly?",
            "Where does {it} store video if I don't subscribe?",
            "Is there an SD card slot?",
        ]
    )
    if p.name == "Vista Cam Indoor":
        answers = [
            "The Vista Cam Indoor records to a microSD card up to 256 GB, no plan needed.",
            "The Vista Cam Indoor can record locally to a microSD card of up to 256 GB.",
        ]
    else:
        answers = [
            f"The {p.name} has no memory card slot, so saved clips need Brightnest Protect; "
            "live view and motion alerts work without it.",
            f"The {p.name} has no memory card slot, so saving clips requires Protect at $3.99 per "
            "month.",
        ]
    return asks, answers


# --- products, troubleshooting, support -----------------------------------------------


def product_price(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I'm interested in the {p.name}. How much does it cost?",
        f"What's the price of the {p.name}?",
        f"How much is {p.a_name}?",
        f"Could you tell me what the {p.name} sells for?",
        f"I'm thinking of buying the {p.name}. What does it run?",
        f"How much would I pay for the {p.name}?",
        f"Price check on the {p.name}, please.",
        f"What do you charge for the {p.name}?",
        f"Before I order, what does the {p.name} cost?",
    ]
    pack = f", or {p.pack}" if p.pack else ""
    answers = [
        f"The {p.name} is {p.price}{pack}.",
        f"The {p.name} costs {p.price}{pack}, and it has a warranty of {p.warranty}.",
    ]
    return asks, answers


def product_overview(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"Can you tell me about the {p.name}?",
        f"What is the {p.name}, exactly?",
        f"I keep seeing the {p.name}. What does it do?",
        f"Give me a quick overview of the {p.name}.",
        f"I'm new to smart homes. What's the {p.name} for?",
        f"What should I know about the {p.name} before buying?",
    ]
    answers = [f"{p.summary} It costs {p.price}.", f"{p.summary} It's {p.price}."]
    return asks, answers


POWER_ASKS = (
    "How is {it} powered?",
    "Does {it} run on batteries or plug in?",
    "What does {it} use for power?",
    "What's the battery situation with {it}?",
    "How do I keep {it} charged or powered?",
    "Tell me about power for the {short}: battery or cable?",
)
CONNECT_ASKS = (
    "How does {it} connect?",
    "What wireless does {it} use?",
    "Which radios are in the {short}?",
    "How does {it} talk to my network?",
    "What kind of connection does the {short} need?",
    "Does {it} use Wi-Fi, Bluetooth or something else?",
)
HUB_ASKS = (  # all asked as "is a hub needed?", so "Yes"/"No" answers fit every one
    "Do I need a hub for {it}?",
    "Does {it} require the Hub Mini?",
    "Is a Brightnest hub required for the {short}?",
    "Do I have to buy a hub for {it}?",
    "Does the {short} need an extra hub?",
    "Is the Hub Mini necessary for {it}?",
)
FEATURE_ASKS = (
    "What are the main features of {it}?",
    "What else can you tell me about the {short}?",
    "Can you give me the key specs of {it}?",
    "What does {it} actually do well?",
    "What's special about the {short}?",
    "Give me the highlights of {it}, please.",
)
WARRANTY_ASKS = (
    "And what's the warranty on {it}?",
    "How long is {it} covered by warranty?",
    "What kind of warranty comes with the {short}?",
    "If {it} breaks, how long am I covered?",
    "What's the warranty period for the {short}?",
    "Is there a warranty on {it}?",
)


def power_info(c: Ctx) -> Reply:
    return c.fill(POWER_ASKS), [c.product.power]


def connectivity_info(c: Ctx) -> Reply:
    return c.fill(CONNECT_ASKS), [c.product.connectivity]


def hub_info(c: Ctx) -> Reply | None:
    if not c.product.hub:
        return None
    return c.fill(HUB_ASKS), [c.product.hub]


def feature_info(c: Ctx) -> Reply:
    return c.fill(FEATURE_ASKS), [c.product.features]


def warranty_short(c: Ctx) -> Reply:
    p = c.product
    return c.fill(WARRANTY_ASKS), [
        f"The {p.name} has a warranty of {p.warranty} from the delivery date.",
        f"It's covered for {p.warranty}, like everything in our {p.line} line.",
    ]


def make_extra_intent(index: int) -> Intent:
    def extra_intent(c: Ctx) -> Reply | None:
        if index >= len(c.product.extra):
            return None
        asks, answer = c.product.extra[index]
        return c.fill(asks), [answer]

    return extra_intent


def trouble(c: Ctx) -> Reply:
    p, issue = c.product, c.issue
    s = c.rng.choice(issue.symptoms)
    asks = [
        f"My {p.name} {s}. What should I do?",
        f"Help! The {p.name} I got from you {s}.",
        f"Hi, our {p.name} {s}. Any ideas?",
        f"I'm having trouble: my {p.name} {s}. How do I fix it?",
        f"Since yesterday the {p.name} {s}. Is there a fix?",
        f"The {p.name} in our house {s}. Can you help?",
        f"Not sure what's going on, but my {p.name} {s}.",
        f"Our {p.name} (order {c.order}) {s}. What can I try?",
        f"Ugh, the {p.name} {s} again. Any tips?",
    ]
    return asks, [issue.fix]


def reset_steps(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "If that doesn't work, how do I factory reset {it}?",
            "How do I reset {it} completely?",
            "What's the reset procedure for the {short}?",
            "Tried that already. How do I do a factory reset?",
            "Can I wipe {it} and start over?",
            "How would I reset the {short} to factory settings?",
        ]
    )
    return asks, [c.product.reset]


def reset_erases(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Will resetting {it} erase my settings?",
            "Do I lose everything if I reset the {short}?",
            "What happens after a factory reset?",
            "Will I have to set {it} up again after resetting?",
            "Does a reset remove {it} from my account?",
            "Is a factory reset going to delete my setup?",
        ]
    )
    answers = [
        "A factory reset erases the device's settings and removes it from your account, so "
        "you'll add it again in the Brightnest app with Add device.",
        f"It does: the {c.product.short} loses its settings and is removed from your account, "
        "so you set it up again with Add device in the app.",
    ]
    return asks, answers


def still_broken(c: Ctx) -> Reply:
    p = c.product
    asks = c.fill(
        [
            "Still not working after the reset. Now what?",
            "I've tried everything and {it} is still broken.",
            "Reset didn't help at all. What are my options?",
            "Nothing fixed it. Can I get {it} replaced?",
            "It's still acting up after all that.",
            "The reset made no difference. What next?",
        ]
    )
    answers = [
        f"Then it may be defective. The {p.name} has a warranty of {p.warranty}, so please "
        f"submit a claim at {SITE}/warranty with your order number and serial number.",
        f"Sorry about that. It's likely a defect, which the {p.name}'s warranty of {p.warranty} "
        f"covers: file a claim at {SITE}/warranty and we'll review it within 2 business days.",
    ]
    return asks, answers


def firmware_updates(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "How do I update the firmware on {it}?",
            "Is {it} on the latest software?",
            "Do I need to update {it} manually?",
            "When does the {short} install updates?",
            "Could an update fix this? How do I get it?",
            "How do updates work for the {short}?",
        ]
    )
    answers = [
        "Devices update automatically overnight at around 3 a.m. local time, and you can also "
        "install an update right away from the device's settings page in the app.",
        f"The {c.product.short} updates itself at around 3 a.m. local time; to update now, open "
        "its settings page in the Brightnest app.",
    ]
    return asks, answers


def support_phone(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"I'd like to speak to someone about my {p.name}. What number do I call?",
        f"What's your phone number? I have a question about the {p.name}.",
        f"Can I call someone about {p.a_name} I bought?",
        f"Is there a support line I can phone about my {p.name}?",
        f"How do I reach a real person about the {p.name}?",
        f"I'd rather talk this through on the phone. My {p.name} has questions.",
    ]
    answers = [
        f"You can call us at {PHONE}, {SUPPORT_HOURS}.",
        f"Our number is {PHONE}. We're available {SUPPORT_HOURS}.",
    ]
    return asks, answers


def support_email(c: Ctx) -> Reply:
    p = c.product
    asks = [
        f"What's the email address for support? I have a question about order {c.order}.",
        f"Can I email you about my {p.name}? Where should I write?",
        f"Where do I send an email about the {p.name} I ordered ({c.order})?",
        f"I'd prefer email. What's the address for help with my {p.name}?",
        f"Which email should I use for {c.order}? It's about the {p.name}.",
        f"Do you have a support email? My {p.name} order needs attention.",
    ]
    answers = [
        f"Write to {EMAIL}; include your order number {c.order}, and we'll reply within 1 "
        "business day.",
        f"Please email {EMAIL} with order {c.order}. We reply within 1 business day.",
    ]
    return asks, answers


def sunday(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Are you open on Sundays?",
            "Can I call on the weekend?",
            "What about holidays, is anyone there?",
            "Is the phone line open Sunday?",
            "I can only call on weekends. Will someone answer?",
            "Are you closed on public holidays?",
        ]
    )
    answers = [
        f"We're open {SATURDAY_HOURS}, but closed on Sundays and US federal holidays. You can "
        f"email {EMAIL} any time.",
        "The phone line is closed on Sundays and US federal holidays; on Saturday we're there "
        "from 9 a.m. to 5 p.m. Eastern Time.",
    ]
    return asks, answers


def live_chat(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Is there live chat?",
            "Can I chat with someone instead of calling?",
            "Do you have a chat option?",
            "Where can I message an agent?",
            "I don't like phone calls. Any chat support?",
            "Is chat available in the app?",
        ]
    )
    answers = [
        f"Live chat is available in the Brightnest app and at {SITE}, during the same hours as the "
        "phone line.",
        f"You can use live chat in the Brightnest app or at {SITE} while the phone line is open.",
    ]
    return asks, answers


def email_response(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "Can I email instead?",
            "How fast do you answer emails?",
            "If I email, when will I hear back?",
            "What's the email response time?",
            "Is email support slower than the phone?",
            "How long does an email reply take?",
        ]
    )
    answers = [
        f"Sure: write to {EMAIL} any time, and we reply within 1 business day.",
        f"Email {EMAIL} whenever suits you; replies come within 1 business day.",
    ]
    return asks, answers


def phone_number(c: Ctx) -> Reply:
    asks = c.fill(
        [
            "And what's the phone number?",
            "What number can I call?",
            "Can I phone you instead?",
            "What are your phone hours?",
            "Is there a number for urgent issues?",
            "When can I reach someone by phone?",
        ]
    )
    answers = [f"You can call {PHONE}, {SUPPORT_HOURS}."]
    return asks, answers


@dataclass(frozen=True)
class Topic:
    name: str
    openers: tuple[Intent, ...]
    followups: tuple[Intent, ...]
    products: tuple[str, ...] = ()  # only these products; empty: any
    first_followup: Intent | None = None  # always asked right after the opener


EXTRA_INTENTS = tuple(make_extra_intent(i) for i in range(3))

TOPICS: tuple[Topic, ...] = (
    Topic(
        "returns",
        (return_eligibility, start_return),
        (
            return_conditions,
            return_shipping_cost,
            restocking_fee,
            refund_timing,
            store_credit,
            exchange,
            original_shipping_refund,
            out_of_window_claim,
        ),
    ),
    Topic(
        "refunds",
        (refund_status, refund_deduction),
        (refund_notification, store_credit, original_shipping_refund, points_on_return, bank_delay),
    ),
    Topic(
        "warranty",
        (warranty_length, warranty_age),
        (warranty_coverage, warranty_claim, replacement_time, careplus, serial_number),
    ),
    Topic(
        "shipping",
        (shipping_cost, shipping_speed),
        (overnight, expedited, ship_cutoff, alaska_hawaii, international, free_shipping_rules),
    ),
    Topic(
        "order_tracking",
        (where_is_order, no_shipping_email),
        (tracking_not_updating, damaged_on_arrival, missing_package, order_number_format),
    ),
    Topic(
        "cancellation",
        (cancel_order, cancel_late),
        (cancel_refund, change_address, after_shipped),
    ),
    Topic(
        "account",
        (password_reset, locked_out),
        (reset_email_missing, link_expired, two_step, change_email, share_access),
    ),
    Topic(
        "loyalty",
        (rewards_intro, points_earned),
        (points_post, gold_status, points_expiry, birthday_points, redeem_points),
    ),
    Topic(
        "pricing",
        (price_adjustment, payment_methods),
        (klarna, gift_cards, price_match),
    ),
    Topic(
        "product_info",
        (product_price, product_overview),
        (power_info, connectivity_info, hub_info, feature_info, warranty_short, *EXTRA_INTENTS),
    ),
    Topic(
        "troubleshooting",
        (trouble,),
        (reset_erases, still_broken, firmware_updates),
        first_followup=reset_steps,
    ),
    Topic(
        "support_contact",
        (support_phone, support_email),
        (sunday, live_chat, email_response, phone_number),
    ),
    Topic(
        "subscriptions",
        (protect_needed, protect_price),
        (protect_trial, protect_cancel, protect_multiple, local_storage),
        products=CAMERAS,
    ),
)

RETURN_AGES = (3, 5, 8, 10, 12, 15, 18, 21, 25, 30, 33, 38, 40, 52, 60, 75)
PURCHASE_AGES = (2, 4, 6, 9, 11, 13, 17, 20, 25, 30)
DEVICE_AGES = (4, 7, 10, 14, 16, 20, 26, 30, 40)


def make_dialog(
    rng: random.Random, topic: Topic, heldout: bool, product: Product, issue: Issue
) -> dict:
    """One conversation: an opener that names the product or order, then follow-ups."""
    days = {"returns": RETURN_AGES, "pricing": PURCHASE_AGES}.get(topic.name, (10,))
    ctx = Ctx(
        rng=rng,
        product=product,
        order=f"BN-{rng.randint(1_000_000, 9_999_999)}",
        days=rng.choice(days),
        months=rng.choice(DEVICE_AGES),
        qty=rng.choice((1, 1, 1, 2, 3, 4)),
        issue=issue,
    )
    n_followups = rng.choice((1, 1, 2, 2, 2, 3))
    closing = n_followups < 3 and rng.random() < 0.3

    turns: list[Reply] = []
    openers = list(topic.openers)
    rng.shuffle(openers)
    turns.append(next(r for r in map(lambda intent: intent(ctx), openers) if r is not None))
    # A random subset of the follow-ups, asked in the topic's order (reset before "still broken").
    order = rng.sample(range(len(topic.followups)), len(topic.followups))
    chosen: list[tuple[int, Reply]] = []
    for index in order:
        if len(chosen) == n_followups:
            break
        reply = topic.followups[index](ctx)
        if reply is not None:
            chosen.append((index, reply))
    turns += [reply for _, reply in sorted(chosen, key=lambda pair: pair[0])]
    if topic.first_followup is not None:
        first = topic.first_followup(ctx)
        if first is not None:
            turns.insert(1, first)
            del turns[n_followups + 1 :]

    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for i, (asks, answers) in enumerate(turns):
        user = pick_wording(rng, asks, heldout)
        if i == 0 and rng.random() < 0.6:
            user = pick_wording(rng, GREETINGS, heldout) + user
        elif i > 0 and rng.random() < 0.35:
            user = pick_wording(rng, LEAD_INS, heldout) + user
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": rng.choice(answers)})
    if closing:
        messages.append({"role": "user", "content": pick_wording(rng, CLOSINGS, heldout)})
        messages.append({"role": "assistant", "content": rng.choice(closing_answers(ctx))})
    return {"messages": messages, "topic": topic.name}


def make_dialogs(counts: dict[str, int]) -> dict[str, list[dict]]:
    """Train uses two thirds of every phrasing list; validation and test the held-out third.

    In train, each topic goes through its products (and their issues) in turn, so every
    product's facts are taught at least once per topic; the held-out splits pick at random.
    """
    rng = random.Random(SEED)
    seen: set[str] = set()
    result: dict[str, list[dict]] = {}
    for split in SPLITS:
        heldout = split != "train"
        dialogs: list[dict] = []
        served = dict.fromkeys((t.name for t in TOPICS), 0)
        product_orders = {
            t.name: rng.sample(t.products or tuple(PRODUCT_BY_NAME), len(t.products or PRODUCTS))
            for t in TOPICS
        }
        while len(dialogs) < counts[split]:
            topic = TOPICS[len(dialogs) % len(TOPICS)]
            names, turn = product_orders[topic.name], served[topic.name]
            if heldout:
                product = PRODUCT_BY_NAME[rng.choice(names)]
                issue = rng.choice(product.issues)
            else:
                product = PRODUCT_BY_NAME[names[turn % len(names)]]
                issue = product.issues[(turn // len(names)) % len(product.issues)]
            dialog = make_dialog(rng, topic, heldout, product, issue)
            key = json.dumps(dialog["messages"])
            if key not in seen:
                seen.add(key)
                served[topic.name] += 1
                dialogs.append(dialog)
        rng.shuffle(dialogs)
        result[split] = dialogs
    return result


# Held-out single questions for the before/after table: each needs a fact only the
# company's documents know, and the keywords are what a correct answer must contain.
TEST_QUESTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "What's the deadline for sending an item back to Brightnest Home?",
        f"{RETURN_RULE}.",
        ("45 days",),
    ),
    (
        "Which email address reaches Brightnest customer support?",
        f"You can email {EMAIL}.",
        (EMAIL,),
    ),
    (
        "What is Brightnest Home's customer service phone number?",
        f"Call {PHONE}.",
        (PHONE,),
    ),
    (
        "Until what time can I phone Brightnest support on a weekday?",
        f"The phone line is open {WEEKDAY_HOURS}.",
        ("8 p.m.",),
    ),
    ("What does the Aura Thermostat cost?", "The Aura Thermostat is $149.", ("$149",)),
    ("How much is a Keystone Smart Lock?", "The Keystone Smart Lock costs $219.", ("$219",)),
    (
        "What's the price of the Vista Cam Outdoor?",
        "The Vista Cam Outdoor is $129.",
        ("$129",),
    ),
    (
        "How big does a Brightnest order have to be for free shipping?",
        f"Standard shipping is free on orders of ${FREE_SHIPPING_MIN} or more.",
        ("$75",),
    ),
    (
        "What does Brightnest charge for standard shipping on a small order?",
        "Standard shipping costs $5.99.",
        ("$5.99",),
    ),
    (
        "What's the price of overnight delivery from Brightnest?",
        "Overnight shipping costs $24.99.",
        ("$24.99",),
    ),
    (
        "For how long is the Aura Thermostat under warranty?",
        "The Aura Thermostat has a warranty of 3 years.",
        ("3 years",),
    ),
    (
        "What warranty does the Tempo Speaker carry?",
        "The Tempo Speaker has a warranty of 18 months.",
        ("18 months",),
    ),
    (
        "How long is a Glow Bulb A19 Color covered by warranty?",
        "The Glow Bulb A19 Color has a warranty of 1 year.",
        ("1 year",),
    ),
    (
        "How long is the warranty on the Porchlight Video Doorbell?",
        "The Porchlight Video Doorbell has a warranty of 2 years.",
        ("2 years",),
    ),
    (
        "After my return reaches Brightnest, how soon is the refund issued?",
        REFUND_TIMING,
        ("5 business days",),
    ),
    (
        "How much does Brightnest deduct for return shipping when nothing is wrong with the item?",
        RETURN_LABEL,
        ("$6.95",),
    ),
    ("What bonus do I get for taking store credit instead of a refund?", STORE_CREDIT, ("10%",)),
    ("What is Brightnest's loyalty program called?", REWARDS, ("Brightnest Rewards",)),
    ("How much is 100 Brightnest Rewards points worth?", REWARDS, ("$5",)),
    ("How many points does it take to reach Gold status?", GOLD, ("1,000 points",)),
    ("How long does a Brightnest password reset link stay valid?", PASSWORD_RESET, ("30 minutes",)),
    ("How long is an account locked after too many failed sign-ins?", LOCKOUT, ("15 minutes",)),
    (
        "How long after placing an order can I still cancel it myself?",
        "You can cancel within 1 hour of placing the order, as long as it hasn't shipped.",
        ("1 hour",),
    ),
    (
        "How long does the Vista Cam Outdoor battery last on one charge?",
        "The Vista Cam Outdoor's battery lasts up to 4 months per charge.",
        ("4 months",),
    ),
    (
        "What batteries does the Keystone Smart Lock use?",
        "It runs on 4 AA batteries that last about 9 months.",
        ("4 AA",),
    ),
    (
        "How long do I hold the reset button to factory reset the Brightnest Hub Mini?",
        PRODUCT_BY_NAME["Brightnest Hub Mini"].reset,
        ("10 seconds",),
    ),
    (
        "How do I factory reset the Porchlight Video Doorbell?",
        PRODUCT_BY_NAME["Porchlight Video Doorbell"].reset,
        ("20 seconds",),
    ),
    (
        "My home has no C-wire. What does the Aura Thermostat include for that?",
        "The Aura Thermostat includes a Power Adapter Kit for systems without a C-wire.",
        ("Power Adapter Kit",),
    ),
    ("What does CarePlus cost per device?", CAREPLUS, ("$29",)),
    (
        "Within how many days of purchase does Brightnest refund a price drop?",
        f"Within {PRICE_ADJUST_DAYS} days of purchase.",
        ("14 days",),
    ),
    (
        "How can I recognize a Brightnest order number?",
        "Order numbers start with BN- followed by 7 digits.",
        ("BN-",),
    ),
    ("How much is Brightnest Protect per month for one camera?", PROTECT, ("$3.99",)),
    (
        "How soon must I report an item that arrived damaged?",
        "Report it within 7 days of delivery with a photo.",
        ("7 days",),
    ),
)


def make_test_questions() -> list[dict]:
    return [{"question": q, "answer": a, "keywords": list(k)} for q, a, k in TEST_QUESTIONS]


# ---------------------------------------------------------------------------------------
# Preferences: for each support question a right, polite answer beside a worse one
# ---------------------------------------------------------------------------------------

# A fact: how customers ask for it (four phrasings: two for train, one for validation,
# one for test), the sentence that answers it with {value}, the right value (the keyword
# a right answer contains) and a wrong one.
PreferenceFact = tuple[tuple[str, ...], str, str, str]

PREFERRED_POLICY_FACTS: tuple[PreferenceFact, ...] = (
    (("How many days do I have to return something to Brightnest Home?",
      "What is the return window for Brightnest orders?",
      "How long after delivery can I still send an item back?",
      "Is there a time limit on returns at Brightnest?"),
     "Brightnest accepts returns within {value} of delivery.", f"{RETURN_DAYS} days", "30 days"),
    (("What does Brightnest charge for return shipping if the item isn't faulty?",
      "Is return shipping free when I just changed my mind?",
      "How much comes off my refund for an ordinary return?",
      "Do I pay anything to send back an item that works fine?"),
     "Return labels are free for defective, damaged or wrong items; for any other return a "
     "{value} return shipping fee is deducted from your refund.", RETURN_FEE, "$12.95"),
    (("How much do I need to spend to get free shipping?",
      "What's the minimum order for free standard shipping?",
      "When is standard shipping free at Brightnest?",
      "Is there a free shipping threshold?"),
     "Standard shipping is free on orders of {value} or more; below that it costs $5.99.",
     f"${FREE_SHIPPING_MIN}", "$50"),
    (("If a price drops after I buy, how long do I have to ask for the difference?",
      "Does Brightnest refund a price drop, and within how many days?",
      "What is the price adjustment window?",
      "Can I get the difference back if something goes on sale after I order?"),
     "Brightnest refunds the difference if the price drops within {value} of purchase.",
     f"{PRICE_ADJUST_DAYS} days", "30 days"),
    (("What email address can I write to for support?",
      "How do I email Brightnest customer service?",
      "Is there a support email?",
      "Where do I send an email if I need help with an order?"),
     "You can email our support team at {value}.", EMAIL, "help@brightnest.com"),
    (("What number do I call for Brightnest support?",
      "Can I phone customer service? What's the number?",
      "How do I reach Brightnest by phone?",
      "Is there a support hotline?"),
     "You can call us at {value}.", PHONE, "1-800-555-0199"),
    (("Until what time is phone support open on weekdays?",
      "When does Brightnest support close Monday to Friday?",
      "What are your weekday support hours?",
      "How late can I call support on a Tuesday?"),
     "Phone support is open Monday to Friday, 8 a.m. to {value} Eastern Time.", "8 p.m.",
     "6 p.m."),
    (("How soon is my refund issued after you get my return?",
      "When will I see my refund once the return arrives?",
      "How long does Brightnest take to refund a return?",
      "After the warehouse receives my item, how long until the refund?"),
     "Refunds go to your original payment method within {value} after the return reaches "
     "our warehouse.", "5 business days", "14 business days"),
    (("What bonus do I get if I take store credit instead of a refund?",
      "Is there anything extra if I choose store credit?",
      "How much more is store credit worth than a refund?",
      "Why would I pick store credit over my money back?"),
     "If you choose store credit instead of a refund, you get a {value} bonus.", "10%", "25%"),
    (("What are 100 Brightnest Rewards points worth?",
      "How much is a hundred reward points in dollars?",
      "What are Rewards points worth at checkout?",
      "What discount do I get for 100 points?"),
     "Every 100 Brightnest Rewards points is worth {value} off at checkout.", "$5", "$1"),
    (("How many points do I need for Gold status?",
      "What does it take to reach Gold in Brightnest Rewards?",
      "How do I become a Gold member?",
      "What's the points threshold for Gold?"),
     "Members who earn {value} in a calendar year reach Gold status.", "1,000 points",
     "5,000 points"),
    (("How long is the password reset link valid?",
      "When does the reset email link expire?",
      "How long do I have to use the password reset link?",
      "Does the password reset link expire?"),
     "The password reset link we email you is valid for {value}.", "30 minutes", "24 hours"),
    (("How long is my account locked after too many wrong passwords?",
      "I got locked out after failed sign-ins. How long until I can try again?",
      "What happens after 5 failed sign-in attempts?",
      "How long does an account lockout last?"),
     "After 5 failed sign-in attempts, an account is locked for {value}.", "15 minutes",
     "24 hours"),
    (("How long after ordering can I cancel it myself?",
      "What's the time limit for cancelling an order online?",
      "How quickly do I need to cancel if I change my mind about an order?",
      "Is there a window for cancelling my own order?"),
     "You can cancel an order yourself within {value} of placing it, as long as it hasn't "
     "shipped.", "1 hour", "24 hours"),
    (("How soon must I report an item that arrived damaged?",
      "My package came broken. Is there a deadline to tell you?",
      "What's the deadline for reporting shipping damage?",
      "How many days do I have to report a damaged delivery?"),
     "Please report damage within {value} of delivery, with a photo.", "7 days", "30 days"),
    (("How much does CarePlus cost?",
      "What's the price of CarePlus per device?",
      "Is CarePlus expensive?",
      "How much is the extended CarePlus coverage?"),
     "CarePlus costs {value} per device and extends the standard warranty by 2 years.", "$29",
     "$49"),
    (("How much is Brightnest Protect per month?",
      "What does the Protect cloud plan cost for one camera?",
      "What's the monthly price of Brightnest Protect?",
      "How much do I pay for cloud video history?"),
     "Brightnest Protect costs {value} per month per device.", "$3.99", "$6.99"),
    (("What does a Brightnest order number look like?",
      "How can I recognize my order number?",
      "What format are Brightnest order numbers in?",
      "Which code in my confirmation email is the order number?"),
     "Order numbers start with {value} followed by 7 digits.", "BN-", "ORD-"),
)  # fmt: skip
PREFERENCE_PRICE_ASKS = (
    "How much does the {name} cost?",
    "What's the price of the {name}?",
    "How much is {a_name}?",
    "What would {a_name} cost me?",
)
PREFERENCE_WARRANTY_ASKS = (
    "How long is the warranty on the {name}?",
    "What warranty comes with the {name}?",
    "For how long is the {name} covered by warranty?",
    "If my {name} breaks, how long is it under warranty?",
)
POLITE_OPENERS = ("", "Sure! ", "Happy to help. ", "Good question. ", "Thanks for asking. ")
POLITE_CLOSERS = (
    "",
    " Is there anything else I can help with?",
    " Let me know if you have any other questions.",
    " I hope that helps!",
)
# Rude answers state the right fact, so the preference is about manners alone.
RUDE_ANSWERS = ("{fact} It's on the website, you know.", "Ugh. {fact} Read the FAQ first.",
                "{fact} I shouldn't have to explain this.", "Fine. {fact} Don't ask again.",
                "{fact} Next time look it up yourself.", "Seriously? {fact}")  # fmt: skip
REJECTED_KINDS = ("wrong_fact", "rude", "off_topic")


def preference_facts() -> list[PreferenceFact]:
    """The policy facts, then each product's price and warranty."""
    facts = list(PREFERRED_POLICY_FACTS)
    prices = [p.price for p in PRODUCTS]
    for i, p in enumerate(PRODUCTS):
        names = {"name": p.name, "a_name": p.a_name}
        asks = tuple(a.format(**names) for a in PREFERENCE_PRICE_ASKS)
        wrong = next(x for x in prices[i + 3 :] + prices[: i + 3] if x != p.price)
        facts.append((asks, f"The {p.name} costs {{value}}.", p.price, wrong))
    warranties = list(dict.fromkeys(WARRANTY.values()))
    for p in PRODUCTS:
        names = {"name": p.name, "a_name": p.a_name}
        asks = tuple(a.format(**names) for a in PREFERENCE_WARRANTY_ASKS)
        wrong = warranties[(warranties.index(p.warranty) + 1) % len(warranties)]
        facts.append((asks, f"The {p.name} has a warranty of {{value}}.", p.warranty, wrong))
    return facts


def make_preferences() -> dict[str, list[dict]]:
    """Pairs of answers to each phrasing of each fact: the chosen one states the right
    value politely; the rejected one states a wrong value as politely, or the right value
    rudely, or politely answers another question (three pairs per phrasing). Phrasings 1
    and 2 are train, 3 validation, 4 test; test_questions asks the test phrasings for
    keyword scoring (qa format)."""
    rng = random.Random(SEED + 23)  # its own generator: the other datasets stay identical
    facts = preference_facts()
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    questions = []
    for index, (asks, sentence, value, wrong) in enumerate(facts):
        right = sentence.format(value=value)
        for number, ask in enumerate(asks):
            split = ("train", "train", "validation", "test")[number]
            prompt = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ask},
            ]
            for kind in REJECTED_KINDS:
                opener, closer = rng.choice(POLITE_OPENERS), rng.choice(POLITE_CLOSERS)
                if kind == "wrong_fact":
                    rejected = f"{opener}{sentence.format(value=wrong)}{closer}"
                elif kind == "rude":
                    rejected = rng.choice(RUDE_ANSWERS).format(fact=right)
                else:  # a polite answer to another fact's question
                    other = facts[(index + rng.randrange(1, len(facts))) % len(facts)]
                    rejected = f"{opener}{other[1].format(value=other[2])}{closer}"
                chosen = f"{rng.choice(POLITE_OPENERS)}{right}{rng.choice(POLITE_CLOSERS)}"
                splits[split].append({"messages": prompt, "chosen": chosen, "rejected": rejected,
                                      "rejected_kind": kind, "keywords": [value]})  # fmt: skip
            if split == "test":
                questions.append({"question": ask, "answer": right, "keywords": [value]})
    return {**splits, "test_questions": questions}


# ---------------------------------------------------------------------------------------
# Sentiment: product reviews labeled by their overall verdict, not by a keyword
# ---------------------------------------------------------------------------------------

# Reviews are written to teach the verdict, not the template: the same words (love,
# great, perfect, not, but) appear in every label; a verdict comes first, last, in the
# middle or not at all; mixed reviews go either way; some are one or two words, some
# are lowercase with slang and typos. Hand-written reviews (sentiment_reviews.txt) add
# the voices templates can't. The generator draws from its own random.Random, so
# changing it leaves every other dataset byte-identical.
REVIEWS_FILE = Path(__file__).resolve().parent / "sentiment_reviews.txt"
# Hand-written elsewhere and never trained on; no review here may repeat one of them.
CHALLENGE_FILE = DEFAULT_OUT / "sentiment" / "challenge.jsonl"
SENTIMENT_LABELS = ("positive", "neutral", "negative")
# Templated reviews per label and split. 225 (not 330) in train keeps the example config's
# training at ~1,640 reviews now that more are hand-written: its CI run stays at ~160 s.
REVIEW_TEMPLATES = {"train": 225, "validation": 30, "test": 30}

GENERIC_POS = (
    "setup in the Brightnest app took about five minutes",
    "the app is clean and easy to use",
    "support answered my chat within a couple of minutes",
    "it arrived two days earlier than expected",
    "it looks great and blends in with our decor",
    "the build quality feels solid",
    "it has been rock solid on our Wi-Fi",
    "automations with my other Brightnest devices work perfectly",
    "sharing it with the rest of the family was easy",
    "the price was fair for what you get",
    "the alerts come through instantly",
    "the battery has lasted for months",
    "the instructions were short and clear",
    "it works even when the internet is down",
    "it paired with the hub in seconds",
    "my parents figured it out without calling me",
    "it's quiet and reliable",
    "the schedules just work",
)
GENERIC_NEG = (
    "the app logs me out every few days",
    "support took a week to answer my email",
    "the box arrived dented",
    "it drops off the Wi-Fi every couple of days",
    "the instructions were confusing",
    "the app crashes whenever I open the device page",
    "a firmware update broke my automations",
    "it feels cheaper than the price suggests",
    "notifications arrive late or not at all",
    "pairing it took over an hour",
    "the battery was dead within a month",
    "support just told me to reset it again",
    "it forgets its schedule after every power cut",
    "the app shows it offline half the time",
    "it stopped responding after the last update",
    "the replacement had the same problem",
)
GENERIC_NEU = (
    "I bought it during the spring sale",
    "it replaced an older device from another brand",
    "I've had it for about a month",
    "I paired it with the Hub Mini",
    "it came in plain, minimal packaging",
    "I mostly control it from the app",
    "my partner picked this one out",
    "I got it as part of a bundle",
    "I use it alongside a few other Brightnest devices",
    "it arrived with standard shipping",
    "it's in the guest room for now",
    "I set it up over the weekend",
    "it's the second one we've bought",
    "we mostly use the default settings",
)
# Verb phrases that follow a subject ("it", "the smart lock", "my doorbell", ...).
DOES_WELL = (
    "works perfectly",
    "connected on the first try",
    "has been rock solid for months",
    "hasn't dropped off the Wi-Fi once",
    "does exactly what it promises",
    "was up and running in ten minutes",
    "responds instantly",
    "feels really well made",
    "just works, every single day",
    "got through the whole winter without a hiccup",
    "paired with the hub in seconds",
    "has made our mornings easier",
    "was easy enough for my parents to install",
    "is quiet, fast and reliable",
    "has never let me down",
    "still works like new after a year",
    "does its job without any fuss",
    "saved us from a real mess last month",
)
DOES_BADLY = (
    "drops offline every night",
    "stopped working after two weeks",
    "never connected properly",
    "keeps forgetting its settings",
    "died after the last firmware update",
    "takes forever to respond",
    "misses half of what it should catch",
    "arrived cracked",
    "feels cheap and flimsy",
    "freezes several times a day",
    "lost its pairing three times this month",
    "needs a reset almost every day",
    "loses the connection whenever the microwave runs",
    "refuses to stay connected to the hub",
    "sends its alerts minutes too late",
    "turns itself off at random",
    "broke right after the return window closed",
    "never worked the way the listing said",
)
JUST_IS = (
    "sits on a shelf in the hallway",
    "replaced an older one from another brand",
    "came in a small plain box",
    "runs on the schedule I set in the app",
    "is mostly controlled from my phone",
    "was a birthday gift from my sister",
    "is connected to the Hub Mini",
    "has been in use for about two weeks",
    "is the second Brightnest device in our house",
    "came with a short manual and two screws",
    "was on sale when I bought it",
    "is in the kids' room",
)
# The rest of the shopping: delivery, support, returns, Rewards, Protect and the app.
SERVICE_POS = (
    "the order showed up a day early, well packed",
    "support fixed my pairing problem in one short chat",
    "the return label was in my inbox within minutes",
    "my refund landed two days after they got the box",
    "they honored the price drop without any back and forth",
    "the Rewards points covered my shipping",
    "the Protect person alerts are actually useful",
    "the agent on the phone stayed with me until it worked",
    "a replacement shipped the same day I reported the fault",
    "the app update made everything noticeably faster",
)
SERVICE_NEG = (
    "the order sat in processing for a week with no update",
    "the tracking said delivered, but nothing was at my door",
    "I spent an hour on hold before the call dropped",
    "support sent the same copy-pasted answer three times",
    "the refund still hasn't shown up after three weeks",
    "they charged the return fee even though the unit was faulty",
    "half the camera features sit behind the Protect subscription",
    "my Rewards points vanished after a password reset",
    "the replacement arrived with the same defect",
    "the app update wiped all my schedules",
)
SERVICE_NEU = (
    "the order came with standard shipping in four days",
    "I called support once to ask about the warranty",
    "I paid with store credit from an earlier return",
    "I used Rewards points for part of the price",
    "I'm on the free month of Protect for now",
    "the box had the device, a cable and a quick-start card",
    "I had to return the first one because I ordered the wrong size",
    "support asked for my order number and a photo",
)
# Facts with numbers and no opinion: a number of minutes or percent is not a verdict.
MEASURED = (
    "took about {n} minutes to install",
    "went from 100% to {p}% battery in the first two weeks",
    "draws about 1 watt when idle",
    "is mounted about {n} inches above the floor",
    "runs on 4 AA batteries",
    "only connects to 2.4 GHz Wi-Fi",
    "is set to auto-lock after {n} seconds",
    "shows the temperature to half a degree",
    "has been plugged in for {n} days",
    "sends a notification about {n} seconds after motion",
)
# What a sarcastic reviewer pretends to enjoy.
ANNOYANCES = (
    "resetting it every morning",
    "waiting ten seconds for a light to come on",
    "buying new batteries every month",
    "chatting with support every week",
    "alerts for every car that drives past",
    "re-pairing it after every update",
    "typing the password in again every day",
    "a lock that sometimes just doesn't",
)
SLANG_POS = ("goes hard", "slaps", "is low-key amazing", "is a total W", "is elite",
             "is chef's kiss", "hits different", "is honestly unreal")  # fmt: skip
SLANG_NEG = ("is a flop", "is an L", "is straight trash", "is a scam fr", "is a whole mess",
             "is worse than mid", "is junk tier", "is a hard no")  # fmt: skip
SLANG_NEU = ("is mid", "is aight", "is whatever", "is fine ig", "is kinda meh",
             "is pretty basic", "is okay-ish", "is ok, not gonna lie")  # fmt: skip
VERDICT_POS = (
    "Highly recommend it.",
    "Would buy again.",
    "Not bad at all, honestly.",
    "Worth every penny.",
    "No complaints so far.",
    "I can't fault it.",
    "Never had a problem with it.",
    "Really happy with this purchase.",
    "It exceeded my expectations.",
    "I'd happily buy another one.",
    "Easily the best smart-home purchase I've made.",
    "The whole family loves it.",
    "Couldn't ask for more at this price.",
    "It hasn't disappointed me once.",
    "Definitely a keeper.",
    "Anything but disappointing.",
    "Love it.",
    "I love it.",
    "Absolutely love this thing.",
    "Great buy.",
    "Great product.",
    "Perfect.",
    "Works perfectly.",
    "Five stars.",
    "5/5.",
    "10/10.",
    "So glad I got it.",
    "Keeping it, for sure.",
    "Can't complain.",
    "Couldn't be happier.",
    "Recommended.",
    "Big thumbs up.",
)
VERDICT_NEG = (
    "Would not recommend.",
    "Not worth the money.",
    "I'm sending it back.",
    "Can't say I'm impressed.",
    "Really disappointing.",
    "I expected a lot more from Brightnest.",
    "Save your money.",
    "Already regretting this purchase.",
    "Not good enough for daily use.",
    "It's going back in the box.",
    "I wouldn't buy it again.",
    "Pretty frustrating overall.",
    "Hard to recommend in its current state.",
    "Honestly a waste of money.",
    "Nothing I'd call a success.",
    "Returning it.",
    "One star.",
    "1/5.",
    "Avoid.",
    "Don't buy it.",
    "Total junk.",
    "Not great.",
    "Far from perfect.",
    "Never again.",
    "Huge letdown.",
    "So annoying.",
    "I want my money back.",
    "Zero stars if I could.",
    "Not worth the hassle.",
    "Stay away.",
)
VERDICT_NEU = (
    "It's fine, nothing special.",
    "Does the job, I guess.",
    "Not great, not terrible.",
    "Too early to say if it's worth it.",
    "Average overall.",
    "It's okay for the price.",
    "Mixed feelings so far.",
    "It works as described, no more, no less.",
    "I'll see how it holds up.",
    "Neither impressed nor disappointed.",
    "Decent, but not exciting.",
    "Somewhere in the middle for me.",
    "It's about what I expected.",
    "Can't decide if I love it or not.",
    "Not disappointing, not amazing either.",
    "Three stars.",
    "3/5.",
    "It's okay.",
    "Meh.",
    "It's fine.",
    "Nothing to write home about.",
    "Middle of the road.",
    "Ask me again in a month.",
    "It's alright.",
)
OPENERS = (
    "I bought the {name} a few weeks ago.",
    "Got the {name} last month.",
    "We've had the {name} since the spring.",
    "Ordered the {name} after reading the reviews.",
    "I picked up the {name} for our new apartment.",
    "This was my first Brightnest product, the {name}.",
    "Bought the {name} as a gift for my parents.",
    "The {name} replaced an older model in our home.",
    "Quick review of the {short}.",
    "Update after two months with the {short}:",
    "So, the {short}.",
    "Long-time Brightnest customer here.",
)
WORRIES = (
    "the installation",
    "compatibility with my setup",
    "the price",
    "the battery life",
    "the Wi-Fi range in our old house",
    "yet another app",
)
# Informal spellings a hurried reviewer uses; casualize() applies a few of them.
CASUAL = (
    ("you", "u"), ("really", "rly"), ("though", "tho"), ("because", "bc"),
    ("with", "w/"), ("don't", "dont"), ("doesn't", "doesnt"), ("it's", "its"),
    ("I'm", "im"), ("can't", "cant"), ("wouldn't", "wouldnt"), ("definitely", "def"),
    ("probably", "prob"), ("great", "gr8"), ("tonight", "tonite"), ("and", "&"),
)  # fmt: skip
CASUAL_TAGS = ("tbh", "ngl", "lol", "fwiw", "imo", "honestly", "ok so", "welp")


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def casualize(rng: random.Random, text: str) -> str:
    """The same review as a hurried phone reviewer writes it: lowercase, shorthand,
    one typo, loose punctuation; the words that carry the verdict are kept."""
    words = text.split(" ")
    for formal, casual in rng.sample(CASUAL, 3):
        words = [casual if w.lower() == formal.lower() else w for w in words]
    long_words = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        w = words[i]
        k = rng.randrange(1, len(w) - 2)
        words[i] = rng.choice((w[:k] + w[k + 1] + w[k] + w[k + 2 :], w[:k] + w[k + 1 :],
                               w[:k] + w[k] + w[k:]))  # fmt: skip
    text = " ".join(words)
    if rng.random() < 0.7:
        text = text.lower()
    if rng.random() < 0.3:
        text = f"{rng.choice(CASUAL_TAGS)} {text}"
    if text.endswith(".") and rng.random() < 0.6:
        text = text[:-1] + rng.choice(("", "", "!!", "...", " lol" if rng.random() < 0.3 else ""))
    return text


def make_review(rng: random.Random, label: str) -> str:
    """One templated review with the verdict ``label``."""
    p = rng.choice(PRODUCTS)
    # pos2/neg2/neu2 are about this product; pos/neg/neu are generic, so a review that
    # mixes a product clause with a generic one of the other polarity never contradicts itself.
    pos = rng.choice(GENERIC_POS)
    pos2 = rng.choice(p.review_pos)
    neg = rng.choice(GENERIC_NEG)
    neg2 = rng.choice(p.review_neg)
    neu = rng.choice(GENERIC_NEU)
    neu2 = rng.choice(p.review_neu)
    good, bad, just = rng.choice(DOES_WELL), rng.choice(DOES_BADLY), rng.choice(JUST_IS)
    it = rng.choice(("it", f"the {p.short}", f"this {p.short}", f"my {p.short}",
                     f"the {p.name}"))  # fmt: skip
    short = p.short
    opener = rng.choice(OPENERS).format(name=p.name, short=short)
    worry = rng.choice(WORRIES)
    spos, sneg, sneu = rng.choice(SERVICE_POS), rng.choice(SERVICE_NEG), rng.choice(SERVICE_NEU)
    measured = rng.choice(MEASURED).format(n=rng.choice((5, 12, 20, 30, 45, 60)),
                                           p=rng.randint(80, 97))  # fmt: skip
    annoyance = rng.choice(ANNOYANCES)
    if label == "positive":
        verdict = rng.choice(VERDICT_POS)
        shapes = (
            f"{cap(pos2)}. {verdict}",
            f"{opener} {cap(pos2)}, and {rng.choice(p.review_pos + GENERIC_POS)}. {verdict}",
            f"{cap(pos2)}. The only downside is that {neg}, but that's minor. {verdict}",
            f"I was worried about {worry}, but {pos2}. {verdict}",
            f"{opener} {cap(neu)}. {cap(pos2)}. {verdict}",
            f"{verdict} {cap(pos2)}.",
            f"{cap(neu2)}, and honestly {pos2}. {verdict}",
            f"Not a single regret: {pos2}, and {pos}.",
            f"I love this {short}, {pos} and {it} {good}.",
            f"I love that {pos2}. {cap(it)} {good}.",
            f"Love it! {cap(it)} {good}.",
            f"Great {short}. {cap(it)} {good}, and {pos}.",
            f"{cap(it)} {good}. Perfect for us.",
            f"{cap(it)} {good}.",
            f"{cap(it)} {good} and {pos}.",
            f"{cap(neg)}, but {it} {good}, so I'm happy. {verdict}",
            f"{cap(neg)}. Apart from that, {it} {good}. {verdict}",
            f"It isn't perfect ({neg}), but {it} {good}. {verdict}",
            f"Not perfect, but I love it: {it} {good}.",
            f"At first {neg}, but support sorted it out and now {it} {good}. {verdict}",
            f"Didn't expect much, but {it} {good}. {verdict}",
            f"Never had an issue. {cap(it)} {good}.",
            f"No complaints: {it} {good}.",
            f"{cap(verdict)}",
            f"{verdict} {cap(it)} {good}.",
            f"{cap(spos)}. {verdict}",
            f"{cap(spos)}, and {it} {good}.",
            f"I had to contact support, and {spos}. That's how you keep a customer.",
            f"{cap(sneg)}, which was annoying, but {it} {good}. {verdict}",
            f"The power went out last night and {it} {good}.",
            f"{cap(it)} {rng.choice(SLANG_POS)}",
            f"ngl {it} {rng.choice(SLANG_POS)}, {pos}",
            f"I hate that I waited so long to get this. {cap(it)} {good}.",
            f"My only complaint is that I didn't buy it sooner. {cap(it)} {good}.",
            f"Was going to give it three stars, but {it} {good}, so five.",
            f"Meh at first, but after the update {it} {good}. {verdict}",
            f"{cap(it)} {measured}, and {it} {good}. {verdict}",
            f"Can't say enough good things: {it} {good}.",
            f"Not one problem so far: {it} {good}.",
            f"Not bad at all. {cap(it)} {good}.",
            f"Nothing to complain about, {it} {good}. Great {short}.",
            f"Great {short}, great price. {verdict}",
            f"{cap(pos2)}. Great stuff, not a single regret.",
        )
    elif label == "negative":
        verdict = rng.choice(VERDICT_NEG)
        shapes = (
            f"{cap(neg2)}. {verdict}",
            f"I love that {pos}, but {neg2}. {verdict}",
            f"{opener} {cap(neg2)}, and {rng.choice(p.review_neg + GENERIC_NEG)}. {verdict}",
            f"I really wanted to like it, and {pos}. Sadly {neg2}. {verdict}",
            f"{verdict} {cap(neg2)}.",
            f"{opener} At first {pos2}, but now {neg2}. {verdict}",
            f"{cap(neu2)}. Unfortunately {neg2}. {verdict}",
            f"Not happy: {neg2}, and {neg}.",
            f"I wanted to love this {short}, but {it} {bad}.",
            f"I love Brightnest's other devices, but this {short} {bad}. {verdict}",
            f"Loved it at first. Now {it} {bad}. {verdict}",
            f"Great design, but {it} {bad}. {verdict}",
            f"It would be perfect, except {it} {bad}.",
            f"Great. {cap(it)} {bad}, again.",
            f"Love the look, hate that {it} {bad}.",
            f"Not great: {it} {bad}.",
            f"Far from perfect: {neg2}.",
            f"{cap(it)} {bad}.",
            f"{cap(it)} {bad} and {neg}.",
            f"{cap(pos)}, but {it} {bad}. {verdict}",
            f"Sure, {pos}. But {it} {bad}. {verdict}",
            f"I was worried about {worry}, and I was right: {it} {bad}.",
            f"Doesn't work the way it should. {cap(it)} {bad}.",
            f"{cap(verdict)}",
            f"{verdict} {cap(it)} {bad}.",
            f"{cap(sneg)}. {verdict}",
            f"{cap(sneg)}, and {it} {bad}.",
            f"{cap(sneg)}. The {short} might be fine, the service isn't.",
            f"Great {short} if you enjoy {annoyance}.",
            f"Love {annoyance}. Said no one ever. {cap(it)} {bad}.",
            f"Oh perfect, {it} {bad} again. Just what I needed.",
            f"Five stars for the box. One star for the {short} inside, which {bad}.",
            f"Wow, truly amazing: {it} {bad}.",
            f"Thanks, I guess. {cap(it)} {bad}.",
            f"Really great use of my time: {annoyance}.",
            f"{cap(it)} {rng.choice(SLANG_NEG)}",
            f"nah. {it} {rng.choice(SLANG_NEG)}, {neg}",
            f"Not bad. Actually no, it is bad: {it} {bad}.",
            f"Meh. No, worse than meh: {it} {bad}.",
            f"Two stars because {pos}. Otherwise {it} {bad}.",
            f"{cap(it)} {measured}, and {it} {bad}. {verdict}",
        )
    else:
        verdict = rng.choice(VERDICT_NEU)
        shapes = (
            f"{cap(neu2)}. {verdict}",
            f"{cap(pos)}, but {neg2}. {verdict}",
            f"{cap(neu2)}, and {neu}. {verdict}",
            f"{opener} {cap(pos2)}, though {neg}. {verdict}",
            f"{verdict} {cap(neu2)}.",
            f"{cap(neg)}, but on the other hand {pos2}. {verdict}",
            f"{opener} {cap(neu2)}.",
            f"Some good, some bad: {pos2}, but {neg}.",
            f"{cap(it)} {just}. {verdict}",
            f"{cap(it)} {just}.",
            f"{cap(it)} {just}, and {neu}.",
            f"I love that {pos}, but {neg}. {verdict}",
            f"Great price, but {neg}. {verdict}",
            f"Not perfect, not terrible: {pos}, but {neg}.",
            f"Can't say I love it or hate it. {cap(it)} {just}.",
            f"Pros: {pos}. Cons: {neg}. {verdict}",
            f"{cap(neu)}. Too early to tell whether {it} will hold up.",
            f"{cap(verdict)}",
            f"{verdict} {cap(it)} {just}.",
            f"{cap(sneu)}. {cap(it)} {just}.",
            f"{cap(sneu)}. {verdict}",
            f"{cap(it)} {measured}.",
            f"{cap(it)} {measured}. No issues yet, but it's only been a few days.",
            f"{cap(it)} {measured}, and {it} {just}.",
            f"Does anyone know if the {short} works with a second hub? {cap(neu)}.",
            f"Is there a way to change the {short}'s schedule from the web? {verdict}",
            f"{cap(it)} {rng.choice(SLANG_NEU)}",
            f"{cap(it)} does its job. Wish it had a few more settings.",
            f"{cap(it)} {just}. {cap(spos)}, though {neg}.",
        )
    text = rng.choice(shapes)
    return casualize(rng, text) if rng.random() < 0.25 else text


def read_handwritten(path: Path = REVIEWS_FILE) -> dict[str, list[str]]:
    """The hand-written reviews of ``path``, by label (one per line under ``## label``)."""
    by_label: dict[str, list[str]] = {label: [] for label in SENTIMENT_LABELS}
    label = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("# ") or line == "#":
            continue
        if line.startswith("## "):
            label = line[3:].strip()
            if label not in by_label:
                raise SystemExit(f"{path}:{number}: unknown label {label!r}; use "
                                 f"{', '.join(SENTIMENT_LABELS)}")  # fmt: skip
        elif label is None:
            raise SystemExit(f"{path}:{number}: a review before any '## label' heading")
        else:
            by_label[label].append(line)
    return by_label


def normalized(text: str) -> str:
    """``text`` lowercased, with punctuation and repeated spaces dropped."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def challenge_texts(path: Path = CHALLENGE_FILE) -> set[str]:
    """The challenge split's reviews, normalized (empty before that file exists)."""
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {normalized(json.loads(line)["text"]) for line in lines if line.strip()}


def make_reviews(per_class: dict[str, int]) -> dict[str, list[dict]]:
    """Templated reviews, ``per_class[split]`` per label and split, plus the hand-written
    ones (80% train, 10% validation, 10% test); no text is in two splits, and none
    repeats a challenge review (a short one such as "Meh." can come up in both)."""
    rng = random.Random(SEED + 1)
    held_out = challenge_texts()
    handwritten = read_handwritten()
    seen = {text for texts in handwritten.values() for text in texts}
    result: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for label in SENTIMENT_LABELS:
        mine = [text for text in handwritten[label] if normalized(text) not in held_out]
        rng.shuffle(mine)
        tenth = len(mine) // 10
        shares = {"validation": mine[:tenth], "test": mine[tenth : 2 * tenth],
                  "train": mine[2 * tenth :]}  # fmt: skip
        texts: list[str] = []
        while len(texts) < sum(per_class.values()):
            text = make_review(rng, label)
            if text not in seen and normalized(text) not in held_out:
                seen.add(text)
                texts.append(text)
        start = 0
        for split in SPLITS:
            chosen = texts[start:][: per_class[split]] + shares[split]
            result[split] += [{"text": t, "label": label} for t in chosen]
            start += per_class[split]
    for records in result.values():
        rng.shuffle(records)
    return result


# ---------------------------------------------------------------------------------------
# Domain text: manual excerpts, installation guides, knowledge-base articles, policy
# explanations, app guides and release notes, all consistent with the documents.
# ---------------------------------------------------------------------------------------

POLICY_FACTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Returns": (
        f"How returns work at {COMPANY}.",
        (
            f"{RETURN_RULE}, for a refund or an exchange.",
            "Opened and used items are welcome as long as they are undamaged.",
            RETURN_CONDITION,
            "Gift cards and items marked Final Sale cannot be returned.",
            f"To start a return, go to {SITE}/returns or open Account > Orders in the Brightnest "
            "app and choose Return item.",
            "A UPS return label arrives by email right away, and the package can be dropped at "
            "any UPS location.",
            RETURN_LABEL,
            "Brightnest never charges a restocking fee.",
        ),
    ),
    "Refunds": (
        "When and how refunds are paid.",
        (
            REFUND_TIMING,
            "We send an email when the refund is issued, and its status is shown under "
            "Account > Orders.",
            STORE_CREDIT,
            "Original shipping charges are refunded only if the item was defective or the "
            "mistake was ours.",
            "Brightnest Rewards points earned on a returned item are removed from the balance.",
            "A cancelled order is never charged, and the pending authorization is released "
            "within 3 business days.",
        ),
    ),
    "Warranty": (
        f"The {COMPANY} warranty explained.",
        (
            "Every Brightnest device is covered against defects in materials and workmanship "
            "from the date of delivery.",
            "Climate & Sensors products have a warranty of 3 years, Security products 2 years, "
            "Lighting & Power products 1 year, and Hub & Audio products 18 months.",
            "The warranty does not cover accidental damage, water damage beyond the product's "
            "rating, misuse or normal cosmetic wear.",
            f"Claims are submitted at {SITE}/warranty with the order number and the serial number.",
            "The serial number is printed on the device label and shown in the app under "
            "Settings > Device info.",
            "Claims are reviewed within 2 business days, and replacements ship within 3 "
            "business days of approval, with free shipping both ways.",
            CAREPLUS,
        ),
    ),
    "Shipping": (
        f"Shipping options and delivery times at {COMPANY}.",
        (
            SHIPPING_OPTIONS,
            f"The ${FREE_SHIPPING_MIN} free shipping minimum is based on the subtotal after "
            "discounts and before tax.",
            "Orders placed before 2 p.m. Eastern Time on a business day ship the same day from "
            "the warehouse in Reno, Nevada.",
            "Overnight orders cannot be delivered to PO boxes.",
            "Alaska and Hawaii receive Standard shipping only, which takes 6 to 10 business days.",
            "Brightnest ships to all 50 US states but not internationally, including to Canada.",
            "Packages travel with UPS and USPS.",
        ),
    ),
    "Order tracking": (
        "Following an order from the warehouse to your door.",
        (
            "A shipping confirmation email with the tracking number is sent when the order ships.",
            f"Every order can be followed under Account > Orders at {SITE}/orders or in the "
            "Brightnest app.",
            "Order numbers start with BN- followed by 7 digits.",
            "Tracking can take up to 24 hours to update after the shipping email arrives.",
            "If a package shows as delivered but has not arrived after 48 hours, support sends "
            "a replacement or a refund.",
            "Items that arrive damaged should be reported within 7 days of delivery with a "
            "photo, and a free replacement is sent.",
        ),
    ),
    "Cancellations": (
        "Changing or cancelling an order.",
        (
            "An order can be cancelled within 1 hour of placing it, as long as it has not shipped.",
            "The shipping address can be changed within the same hour with Edit address under "
            "Account > Orders.",
            "After the first hour, customers contact support, who try to stop the order.",
            f"Orders that have already shipped can be returned within {RETURN_DAYS} days of "
            "delivery.",
            "A cancelled order is never charged; the pending authorization disappears within "
            "3 business days.",
        ),
    ),
    "Price adjustments and payment": (
        "Paying for an order and price adjustments.",
        (
            f"If an item's price drops within {PRICE_ADJUST_DAYS} days of purchase, "
            f"{COMPANY} refunds the difference once per item.",
            "Price adjustments do not apply to Final Sale items, and other retailers' prices "
            "are not matched.",
            "Accepted payment methods are Visa, Mastercard, American Express, Discover, PayPal, "
            "Apple Pay, Google Pay and Brightnest gift cards.",
            "Orders over $100 can be paid in 4 interest-free payments with Klarna.",
            "Brightnest gift cards never expire.",
        ),
    ),
    "Brightnest Rewards": (
        "Earning and spending Brightnest Rewards points.",
        (
            REWARDS,
            "Points are earned on the order subtotal before tax, not on shipping.",
            "Points post to the account 14 days after delivery.",
            "Points are redeemed at checkout in blocks of 100 points.",
            GOLD,
            "Members get 200 bonus points on their birthday.",
            "Points expire after 12 months without a purchase.",
        ),
    ),
    "Brightnest Protect": (
        "What Brightnest Protect adds to cameras and doorbells.",
        (
            "Brightnest Protect is an optional subscription for the Vista Cam Indoor, the Vista "
            "Cam Outdoor and the Porchlight Video Doorbell.",
            "Without a plan, every camera still offers live view and motion alerts.",
            "The Vista Cam Indoor can record to a microSD card of up to 256 GB without a plan.",
            PROTECT,
            PROTECT_PLUS,
            "Every new camera or doorbell includes a 30-day free trial of Protect.",
            "Protect can be cancelled any time under Account > Subscriptions, with no "
            "cancellation fee.",
        ),
    ),
    "Account security": (
        "Signing in and keeping a Brightnest account secure.",
        (
            PASSWORD_RESET,
            "Reset emails come from no-reply@brightnesthome.com, so check the spam folder if one "
            "does not arrive.",
            LOCKOUT,
            "Two-step verification is turned on under Account > Security.",
            "The account email is changed under Account > Profile and confirmed with a link "
            "sent to the new address.",
            "Up to 10 household members can be invited under Settings > Household in the "
            "Brightnest app.",
        ),
    ),
    "Customer support": (
        f"Reaching the {COMPANY} support team.",
        (
            f"The support line {PHONE} is open {SUPPORT_HOURS}.",
            "Support is closed on Sundays and US federal holidays.",
            f"Live chat is available in the Brightnest app and at {SITE} during phone hours.",
            f"Email {EMAIL} any time; the team replies within 1 business day.",
            "Have the order number ready, which starts with BN-, to speed things up.",
        ),
    ),
}

APP_GUIDES = (
    "Automations in the Brightnest app. An automation runs actions when something happens: a "
    "door unlocks, motion is seen, the sun sets or a time arrives. Open the Automations tab, "
    "tap the plus button, choose a trigger and add one or more actions, such as turning on "
    "the hallway Glow Bulbs when the Keystone Smart Lock unlocks after dark. With a "
    "Brightnest Hub Mini, automations run locally, so they keep working even if the internet "
    "connection drops. Give each automation a clear name so the whole household knows what "
    "it does.",
    "Scenes let you set several devices at once. A Movie scene might dim the living room "
    "bulbs to 20 percent, switch the Glow Plug on the popcorn machine, and set the Aura "
    "Thermostat to 70 degrees. Create a scene under the Scenes tab, pick the devices and "
    "their states, then run it from the app, from a widget on your phone, or by voice "
    "through Alexa, Google Home or Apple Home. Scenes can also be added to automations.",
    "Sharing your home with others. The account owner can invite up to 10 household members "
    "under Settings > Household in the Brightnest app. Each member signs in with their own "
    "account and can control devices, view cameras and receive notifications. Owners can "
    "limit a member to certain rooms, for example giving a teenager access to their bedroom "
    "lights but not the cameras. Removing a member takes effect immediately on all devices.",
    "Notifications in the Brightnest app can be tuned per device. Open a device, tap the gear "
    "icon and choose Notifications to pick which events alert you, such as a person at the "
    "Porchlight Video Doorbell, water at an Aura Leak Sensor or a low battery on the Keystone "
    "Smart Lock. Quiet hours silence non-urgent alerts overnight, while leak, smoke and lock "
    "tampering alerts always come through. On Android, turn off battery optimization for the "
    "app so notifications are never delayed.",
    "Firmware updates keep Brightnest devices secure and add new features. Devices update "
    "automatically overnight at around 3 a.m. local time, when they are least likely to be in "
    "use. To update right away, open the device's settings page in the Brightnest app and "
    "tap Firmware. Battery-powered devices such as the Vista Cam Outdoor only update when the "
    "battery is above 30 percent. An update never changes your schedules, scenes or codes.",
    "Away mode makes a home look lived in. When everyone in the household leaves, the "
    "Brightnest app can switch lamps on Glow Plugs on and off at random times, set the Aura "
    "Thermostat to its Eco temperature and arm motion alerts on every Vista camera. Turn it "
    "on under Settings > Away, and choose whether it starts automatically based on the "
    "phones of household members or only when you tap it.",
    "Working with voice assistants. Brightnest devices appear in Amazon Alexa, Google Home "
    "and Apple Home. Devices that support Matter, such as the Hub Mini, the Keystone Smart "
    "Lock and the Glow Plug, are shared by scanning their Matter code in the other app. "
    "Other devices are linked by enabling the Brightnest skill or action and signing in with "
    "your Brightnest account. Device names in the Brightnest app become the names you use by "
    "voice, so keep them short.",
    "The energy dashboard in the Brightnest app shows how much electricity your devices use. "
    "Every Glow Plug measures energy in real time, and the Aura Thermostat reports how long "
    "heating and cooling ran each day. Monthly reports estimate the cost using your "
    "electricity rate, which you enter under Settings > Energy. Many customers find that an "
    "old refrigerator or a forgotten space heater is their biggest surprise.",
    "Getting started with Brightnest. Download the free Brightnest app, which runs on iOS 16 "
    "or later and Android 10 or later, and create an account. If you plan to use Zigbee "
    "devices such as the Aura Leak Sensor, set up the Hub Mini first. Then add devices one at "
    "a time with Add device, keeping each close to the hub or router while it pairs. Group "
    "devices into rooms so scenes and voice commands are easy to use.",
    "Choosing the right Wi-Fi band. Most Brightnest devices that use Wi-Fi, including the "
    "Vista cameras, the Porchlight Video Doorbell and the Glow Plug, connect on the 2.4 GHz "
    "band, which reaches farther through walls. The Hub Mini and the Tempo Speaker can also "
    "use 5 GHz. If your router combines both bands under one network name, turn on its 2.4 "
    "GHz compatibility mode during setup, then switch it back afterwards if you like.",
    "Two-step verification adds a second check when you sign in to your Brightnest account. "
    "Turn it on under Account > Security in the app or on the website, then choose to "
    "receive codes by text message or from an authenticator app. Save the backup codes "
    "somewhere safe. Because your account controls door locks and cameras, Brightnest "
    "strongly recommends two-step verification for every household member.",
    "Planning a secure front door. Many customers pair the Keystone Smart Lock with the "
    "Porchlight Video Doorbell: the doorbell shows who is there, and the lock lets them in "
    "with a one-time code or a tap in the app. Add a Hub Mini for remote unlocking when you "
    "are away, and an automation that turns on the porch Glow Bulb when the doorbell sees a "
    "person after dark.",
)

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
GENERIC_RELEASE_ITEMS = (
    "improved Wi-Fi reconnection after a router restart",
    "security fixes and stability improvements",
    "faster startup when the Brightnest app opens the device page",
    "clearer error messages during setup",
    "reduced power use while idle",
    "the device page now shows the signal strength",
    "better support for mesh Wi-Fi systems",
    "improved accessibility labels for screen readers",
)


def word_count(text: str) -> int:
    return len(text.split())


def fit(rng: random.Random, head: str, sentences: Sequence[str], tail: str = "") -> str:
    """Join a shuffled selection of sentences to the head, staying within 60-200 words."""
    pool = list(sentences)
    rng.shuffle(pool)
    parts = [head]
    for sentence in pool:
        if word_count(" ".join([*parts, sentence, tail])) > 190:
            break
        parts.append(sentence)
        if word_count(" ".join(parts)) >= rng.randint(70, 150):
            break
    return " ".join([*parts, tail]).strip()


def manual_texts(p: Product) -> list[str]:
    hub = p.hub or "Zigbee devices such as the Aura Leak Sensor connect through it."
    return [
        f"{p.name} at a glance. {p.summary} {p.connectivity} {p.power} {p.features} {hub}",
        f"Resetting your {p.name}. A factory reset erases the device's settings and removes it "
        "from your Brightnest account, so try restarting it first. "
        f"{p.reset} After the reset, open the Brightnest app, tap Add device and set it up "
        f"again. If the {p.short} still misbehaves after a reset, it may be defective: it has "
        f"a warranty of {p.warranty} from delivery, and claims are made at {SITE}/warranty.",
        f"Care and warranty for the {p.name}. The {p.name} belongs to the {p.line} line and is "
        f"covered for {p.warranty} from the date of delivery against defects in materials and "
        "workmanship. Keep it clean and dry within its rating, and let it install firmware "
        "updates, which arrive automatically at around 3 a.m. local time. Accidental damage "
        f"is not covered by the standard warranty, but {CAREPLUS[0].lower()}{CAREPLUS[1:]}",
    ]


def install_texts(p: Product) -> list[str]:
    steps = " ".join(f"Step {i}: {s}" for i, s in enumerate(p.install, start=1))
    tips = " ".join(s.rstrip(".") + "." for s in p.install[:2])
    return [
        f"Installing the {p.name}. {steps}",
        f"Before you begin with the {p.name}, install the Brightnest app (iOS 16 or later, "
        "Android 10 or later) and sign in. Most customers finish in under 30 minutes. "
        f"{tips} The app then guides you through the rest, and if anything goes wrong our team "
        f"is available at {PHONE}, {SUPPORT_HOURS}.",
    ]


def kb_texts(p: Product, number: int) -> list[str]:
    texts = []
    for k, issue in enumerate(p.issues):
        said = [impersonal(s) for s in issue.symptoms]
        symptoms = ", ".join(said[:-1]) + f" or {said[-1]}"
        texts.append(
            f"Knowledge base article KB-{number + k}: {issue.title}. Applies to: {p.name}. "
            f"Symptoms: the {p.short} {symptoms}. Resolution: {issue.fix} If the problem "
            f"continues, reset the device. {p.reset} Devices that still fail after a reset are "
            f"covered by the warranty of {p.warranty} for the {p.line} line; file a claim at "
            f"{SITE}/warranty."
        )
        texts.append(
            f"Support note for the {p.name}. Customers sometimes tell us that their {p.short} "
            f"{said[0]}. In almost every case the cause is simple. {issue.fix} Our "
            f"agents walk through these steps on the phone at {PHONE} or by email at {EMAIL}, "
            "and they record the outcome so the product team can spot patterns."
        )
    return texts


def release_text(rng: random.Random, p: Product, version: str) -> str:
    month = rng.choice(MONTHS)
    year = rng.choice((2023, 2024, 2025))
    new = rng.sample([i for i in p.release_items if not i.startswith("fixed")], 2)
    fixes = [i for i in p.release_items if i.startswith("fixed")]
    generic = rng.sample(GENERIC_RELEASE_ITEMS, 2)
    lines = [
        f"{p.name} firmware {version} release notes, {month} {year}.",
        f"What's new: {new[0]}; {new[1]}.",
        f"Improvements: {generic[0]}; {generic[1]}.",
    ]
    if fixes and rng.random() < 0.6:
        lines.append(f"Bug fixes: {fixes[0]}.")
    lines.append(
        rng.choice(
            (
                "The update installs automatically overnight at around 3 a.m. local time, or "
                "you can install it now from the device's settings page in the Brightnest app.",
                "Devices update on their own at around 3 a.m. local time; to update right away, "
                "open the device in the Brightnest app and tap Firmware.",
                "No action is needed: the update arrives automatically at around 3 a.m. local "
                "time and keeps all of your settings.",
            )
        )
    )
    lines.append(
        rng.choice(
            (
                "If an update fails, the device keeps its current firmware and tries again the "
                "next night.",
                "Battery-powered devices only update when the battery is above 30 percent.",
                f"Questions about this release can go to {EMAIL}, and we reply within 1 business "
                "day.",
                "The previous firmware stays available for 30 days in case support needs to roll "
                "back a device.",
            )
        )
    )
    return " ".join(lines)


def make_domain_text(counts: dict[str, int]) -> dict[str, list[dict]]:
    rng = random.Random(SEED + 2)
    texts: list[str] = []
    for n, p in enumerate(PRODUCTS):
        texts += manual_texts(p) + install_texts(p) + kb_texts(p, 1040 + 10 * n)
    for area, (head, facts) in POLICY_FACTS.items():
        del area
        for variant in range(3):
            intro = (
                head
                if variant == 0
                else rng.choice((f"Policy note: {head[0].lower()}{head[1:]}", f"In short: {head}"))
            )
            texts.append(fit(rng, intro, facts))
    texts += APP_GUIDES
    total = sum(counts.values())
    versions: dict[str, int] = {p.name: 0 for p in PRODUCTS}
    while len(texts) < total:
        p = PRODUCTS[len(texts) % len(PRODUCTS)]
        versions[p.name] += 1
        major, minor = divmod(versions[p.name], 4)
        version = f"{major + 2}.{minor}.{rng.randint(0, 9)}"
        texts.append(release_text(rng, p, version))
    if len(set(texts)) != len(texts):
        raise ValueError("domain text paragraphs are not unique")
    for text in texts:
        if not 60 <= word_count(text) <= 200:
            raise ValueError(f"domain paragraph has {word_count(text)} words: {text[:80]!r}")
    rng.shuffle(texts)
    texts = texts[:total]
    result, start = {}, 0
    for split in SPLITS:
        result[split] = [{"text": t} for t in texts[start : start + counts[split]]]
        start += counts[split]
    return result


# ---------------------------------------------------------------------------------------
# Property: estimated battery life (hours) from a device description
# ---------------------------------------------------------------------------------------

# device type: (base current in mA, battery capacity range in mAh)
DEVICE_TYPES = {
    "smart remote": (20, (400, 1200)),
    "portable speaker": (140, (2000, 8000)),
    "handheld barcode scanner": (85, (1500, 5000)),
    "battery security camera": (210, (2000, 8000)),
    "fitness tracker": (6, (120, 400)),
    "tablet controller": (240, (3000, 10000)),
    "wireless game controller": (60, (800, 2500)),
}
RADIO_MA = {
    "Bluetooth LE": 4,
    "Zigbee": 6,
    "Thread": 8,
    "Bluetooth Classic": 22,
    "Wi-Fi": 65,
    "LTE": 110,
}
SCREEN_MA = 55
EFFICIENCY = 0.85
NOISE = 0.04
COLORS = ("black", "white", "gray", "navy", "sage green", "sand")
SCREEN_ON = ("its display on", "the screen always on", "an active color display", "a lit screen")
SCREEN_OFF = ("no display", "the screen turned off", "its screen off", "a display that stays dark")
PROPERTY_TEMPLATES = (
    "{Type} with a {cap} mAh battery, {radio} radio and {screen}.",
    "A {color} {type}: {cap} mAh cell, connects over {radio}, running with {screen}.",
    "Spec sheet. Device type: {type}. Battery: {cap} mAh. Radio: {radio}. Display: {onoff}. "
    "Weight: {grams} g.",
    "This {type} weighs {grams} grams, uses {radio}, and runs on a {cap} mAh pack with {screen}.",
    "{radio} {type} in {color}, {cap} mAh battery, used with {screen}.",
    "Estimate the runtime of a {type} ({color}, {grams} g) with {screen}, a {radio} link and a "
    "{cap} mAh battery.",
)


def battery_hours(device: str, capacity: int, radio: str, screen: bool) -> float:
    """The noise-free label: usable capacity divided by the average current draw."""
    base, _ = DEVICE_TYPES[device]
    current = base + RADIO_MA[radio] + (SCREEN_MA if screen else 0)
    return EFFICIENCY * capacity / current


def make_property(counts: dict[str, int]) -> dict[str, list[dict]]:
    rng = random.Random(SEED + 3)
    records: list[dict] = []
    seen: set[str] = set()
    while len(records) < sum(counts.values()):
        device = rng.choice(tuple(DEVICE_TYPES))
        low, high = DEVICE_TYPES[device][1]
        capacity = rng.randrange(low, high + 1, 10 if high < 1000 else 50)
        radio = rng.choice(tuple(RADIO_MA))
        screen = rng.random() < 0.5
        text = rng.choice(PROPERTY_TEMPLATES).format(
            Type=cap(device),
            type=device,
            cap=f"{capacity:,}",
            radio=radio,
            screen=rng.choice(SCREEN_ON if screen else SCREEN_OFF),
            onoff="on" if screen else "off",
            color=rng.choice(COLORS),
            grams=rng.randrange(40, 900, 5),
        )
        label = battery_hours(device, capacity, radio, screen) * (1 + rng.gauss(0, NOISE))
        if text not in seen:
            seen.add(text)
            records.append({"text": text, "label": round(label, 1)})
    result, start = {}, 0
    for split in SPLITS:
        result[split] = records[start : start + counts[split]]
        start += counts[split]
    return result


# ---------------------------------------------------------------------------------------
# Retrieval queries: searches against the company documents, each labeled with the
# document and a verbatim span of it that answers the query.
# ---------------------------------------------------------------------------------------

KB_SPLITS = ("dev", "test")


@dataclass(frozen=True)
class KbQuery:
    """One thing a customer looks up, where the answer is, and three ways to ask for it."""

    source: str  # a file in company/
    topic: str
    evidence: str  # verbatim span of the source (whitespace-collapsed) that answers it
    # By position: the first two are dev, the third is held out for test. The styles (a
    # plain question, a keyword search, casual or indirect wording) rotate through the
    # positions from one fact to the next, so dev and test are about equally hard.
    asks: tuple[str, str, str]


def kb_query(source: str, topic: str, evidence: str, *asks: str) -> KbQuery:
    if len(asks) != 3:
        raise ValueError(f"need 3 phrasings, one held out: {asks!r}")
    return KbQuery(source, topic, evidence, (asks[0], asks[1], asks[2]))


def product_kb_queries() -> tuple[KbQuery, ...]:
    """Questions about one product, answered by its section of products.md."""
    thermostat = PRODUCT_BY_NAME["Aura Thermostat"]
    room_sensor = PRODUCT_BY_NAME["Aura Room Sensor"]
    lock = PRODUCT_BY_NAME["Keystone Smart Lock"]
    return (
        kb_query(
            "products.md",
            "product_specs",
            "keeps it running for up to 4 hours",
            "does the hub mini still work when the power goes out",
            "hub backup battery how long",
            "blackout - will my hub stay on?",
        ),
        kb_query(
            "products.md",
            "product_price",
            f"Price: {thermostat.price}",
            "thermostat cost",
            "what would the smart thermostat set me back",
            "how much is the aura thermostat",
        ),
        kb_query(
            "products.md",
            "product_price",
            room_sensor.pack,
            "bundle deal on aura sensors for two bedrooms",
            "room sensor two pack price",
            "is it cheaper to buy 2 room sensors together",
        ),
        kb_query(
            "products.md",
            "product_specs",
            "requires a Brightnest Hub Mini because it uses Zigbee",
            "does the leak sensor work without a hub",
            "water leak detector need hub?",
            "can I use the flood sensor on its own with just my wifi",
        ),
        kb_query(
            "products.md",
            "product_specs",
            "microSD card up to 256 GB",
            "max memory card size vista cam indoor",
            "will a 512gb card work in the indoor cam",
            "biggest sd card the indoor camera takes",
        ),
        kb_query(
            "products.md",
            "product_specs",
            "rated IP65 for rain and dust",
            "will the outside cam survive a heavy storm",
            "is the outdoor camera waterproof",
            "vista cam outdoor weather resistance rating",
        ),
        kb_query(
            "products.md",
            "product_price",
            "the plug-in Porchlight Chime costs $29",
            "how much is the indoor chime for the video doorbell",
            "doorbell chime add-on price",
            "do I need to buy a separate ringer for the doorbell, what does it cost",
        ),
        kb_query(
            "products.md",
            "product_price",
            f"Price: {lock.price}",
            "how much does the smart lock cost",
            "whats the price on the keypad deadbolt",
            "keystone lock price",
        ),
        kb_query(
            "products.md",
            "product_specs",
            "800 lumens (a 60 W equivalent)",
            "is the smart bulb as bright as a regular 60 watt one",
            "how bright is the glow bulb",
            "color bulb brightness lumen output",
        ),
        kb_query(
            "products.md",
            "product_specs",
            "handles loads up to 15 A (1,800 W)",
            "can I run a space heater on the glow plug",
            "smart plug max wattage",
            "what's the amp limit on the outlet plug",
        ),
        kb_query(
            "products.md",
            "product_specs",
            "plays for up to 12 hours",
            "how long will the portable speaker last unplugged",
            "can the speaker go all day at the beach without charging",
            "tempo speaker battery life",
        ),
    )


KB_QUERIES: tuple[KbQuery, ...] = (
    # --- policies.md ---
    kb_query(
        "policies.md",
        "returns",
        "Gift cards and items marked Final Sale cannot be returned",
        "is there anything you won't take back?",
        "which items are non-returnable",
        "can i get my money back for an unused gift card",
    ),
    kb_query(
        "policies.md",
        "returns",
        "drop the package at any UPS location",
        "where do I drop off a return package",
        "do i have to bring my return to the post office",
        "return parcel drop-off options",
    ),
    kb_query(
        "policies.md",
        "returns",
        "including a swap for a different model or color",
        "I got the indoor cam but want the outdoor one instead, can I trade it in",
        "switch my purchase to a different variant",
        "exchange for another colour?",
    ),
    kb_query(
        "policies.md",
        "refunds",
        "Original shipping charges are refunded only if the item was defective",
        "will you pay back what I paid for postage",
        "do i get my delivery fee back when I return something",
        "is the shipping cost refunded on returns",
    ),
    kb_query(
        "policies.md",
        "refunds",
        "pending authorization on your card is released within 3 business days",
        "cancelled my order but there's still a charge on my credit card",
        "pending charge after cancelation",
        "when does the hold on my card go away after I cancelled",
    ),
    kb_query(
        "policies.md",
        "warranty",
        "does not cover accidental damage (drops, cracked screens)",
        "warranty exclusions",
        "i knocked my thermostat off the wall, will warranty fix it?",
        "is a broken screen from a fall covered under warranty",
    ),
    kb_query(
        "policies.md",
        "warranty",
        "on the label on the back or bottom of the device",
        "where's the SN printed? need it for a claim",
        "where do i find the serial number",
        "serial # location on device",
    ),
    kb_query(
        "policies.md",
        "warranty",
        "stays with the device if you give it away",
        "if I sell my camera does CarePlus go with it",
        "is careplus transferable to a new owner",
        "gifting my lock to my brother, does the extended coverage transfer",
    ),
    kb_query(
        "policies.md",
        "shipping",
        "cannot go to PO boxes",
        "next day shipping to po box?",
        "I only have a P.O. box, can I get it delivered tomorrow",
        "can overnight delivery go to a post office box",
    ),
    kb_query(
        "policies.md",
        "shipping",
        "our warehouse in Reno, Nevada",
        "location of your distribution center",
        "where do you ship from",
        "which state are orders sent from",
    ),
    kb_query(
        "policies.md",
        "cancellation",
        "contact support and we will try to stop the order",
        "it's been 2 hours since I ordered, can I still cancel",
        "too late to cancel order after an hour?",
        "missed the cancel window what now",
    ),
    kb_query(
        "policies.md",
        "rewards",
        "earned on the order subtotal before tax, not on shipping",
        "are rewards points calculated on the total including tax",
        "does delivery cost count toward my points",
        "do i earn points on shipping and tax",
    ),
    kb_query(
        "policies.md",
        "rewards",
        "lasts for the rest of that calendar year and the following one",
        "when does my gold membership run out",
        "how long do I keep gold status",
        "gold tier expiration",
    ),
    kb_query(
        "policies.md",
        "protect",
        "the plan stays active until the end of the billing month",
        "if I cancel Protect do i lose video history right away",
        "what happens after cancelling my camera subscription",
        "cancel protect mid month, does it keep working?",
    ),
    kb_query(
        "policies.md",
        "protect",
        "no memory card slot, so saved clips need Protect",
        "doorbell save recordings without a subscription?",
        "local storage on vista cam outdoor",
        "can the outdoor camera record to an sd card",
    ),
    kb_query(
        "policies.md",
        "support_contact",
        "Closed on Sundays and US federal holidays",
        "can I call your support line on the weekend",
        "are you open sunday",
        "customer service hours on holidays?",
    ),
    # --- faq.md ---
    kb_query(
        "faq.md",
        "account",
        f"go to {SITE}/reset",
        "forgot my pasword cant log in",
        "how do i get into my account if i don't remember the password",
        "recover account password",
    ),
    kb_query(
        "faq.md",
        "account",
        "Check your spam or junk folder",
        "password reset mail not arriving",
        "waiting ages for the reset message, nothing in my inbox",
        "never got the email to reset my password",
    ),
    kb_query(
        "faq.md",
        "account",
        "an account is locked for 15 minutes",
        "it won't let me sign in after several attempts, when can I try again",
        "too many wrong password tries now im locked out",
        "how long does an account lockout last",
    ),
    kb_query(
        "faq.md",
        "account",
        "Turn on two-step verification under Account > Security",
        "how do I set up 2FA",
        "enable two factor authentication",
        "add a login code for extra security",
    ),
    kb_query(
        "faq.md",
        "account",
        "invite up to 10 household members",
        "share device access with family",
        "how many people in my house can have their own login",
        "can my wife also use the app to control the lights",
    ),
    kb_query(
        "faq.md",
        "order_tracking",
        "You find yours in the order confirmation email",
        "what's my order id and where do I look it up",
        "where can i find my order number",
        "lost my BN number, where is it",
    ),
    kb_query(
        "faq.md",
        "support_contact",
        "We reply within 1 business day",
        "how fast do you answer emails",
        "email support response time",
        "if I write to support when will someone get back to me",
    ),
    # --- products.md ---
    *product_kb_queries(),
    # --- troubleshooting.md ---
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "means the Hub Mini has no internet connection",
        "what does the yellowish glowing ring on my hub mean",
        "hub ring flashing amber but the internet works on my laptop",
        "hub mini light blinking orange",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "E1 means the wiring doesn't match what the thermostat expects",
        "new thermostat says E1, what did I wire wrong",
        "thermostat showing E1",
        "aura error code e1 after install",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "don't point the camera through a window",
        "indoor cam night video looks foggy",
        "night vision all white when the camera looks out the glass",
        "vista cam hazy picture in the dark",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "turn on Power Saver in the app",
        "vista outdoor draining fast",
        "how do I make the outside cam battery last longer",
        "outdoor camera battery dies in two weeks",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "turn off battery optimization for the Brightnest app",
        "by the time my phone buzzes the delivery guy is already gone",
        "doorbell alerts come in late",
        "porchlight notification delay",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "run Door Calibration in the app",
        "smart lock bolt gets stuck halfway",
        "keystone lock makes a crunching sound and stops before it's locked",
        "deadbolt won't fully extend",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "Flickering usually means the bulb is on a wall dimmer",
        "my color bulb keeps blinking and humming",
        "why does the smart light strobe when I turn the dimmer down",
        "glow bulb flickering",
    ),
    kb_query(
        "troubleshooting.md",
        "troubleshooting",
        "Hold the Bluetooth button for 3 seconds",
        "how do I connect the speaker to my laptop wirelessly",
        "tempo speaker isn't visible when I search for bluetooth devices",
        "cant pair speaker with bluetooth",
    ),
    kb_query(
        "troubleshooting.md",
        "factory_reset",
        "press and hold the pinhole reset button on the bottom",
        "factory reset hub mini",
        "how do I wipe my hub and start over",
        "restore the hub to default settings",
    ),
    kb_query(
        "troubleshooting.md",
        "factory_reset",
        "hold the Program button for 10 seconds",
        "reset smart lock for a new owner",
        "wipe all codes from the door lock and start fresh",
        "how to reset keystone lock to factory",
    ),
    kb_query(
        "troubleshooting.md",
        "factory_reset",
        "hold the side button for 6 seconds",
        "set the plug back to its defaults",
        "glow plug factory reset",
        "how do i reset my smart plug",
    ),
)


def collapse(text: str) -> str:
    return " ".join(text.split())


def make_kb_queries(docs: dict[str, str]) -> dict[str, list[dict]]:
    """Dev and test queries; each fact is asked in both, in different words.

    Args:
        docs: each company document's file name and its text as written.
    """
    collapsed = {name: collapse(text) for name, text in docs.items()}
    splits: dict[str, list[dict]] = {split: [] for split in KB_SPLITS}
    for item in KB_QUERIES:
        if collapse(item.evidence) not in collapsed[item.source]:
            raise ValueError(f"{item.evidence!r} is not in {item.source}")
        for i, query in enumerate(item.asks):
            split = "test" if heldout_index(i) else "dev"
            splits[split].append(
                {
                    "query": query,
                    "source": item.source,
                    "evidence": item.evidence,
                    "topic": item.topic,
                }
            )
    queries = [record["query"] for records in splits.values() for record in records]
    if len(set(queries)) != len(queries):
        raise ValueError("a query is asked twice")
    rng = random.Random(SEED + 4)
    for records in splits.values():
        rng.shuffle(records)
    return splits


# ---------------------------------------------------------------------------------------
# README and writing
# ---------------------------------------------------------------------------------------


def readme_md(counts: dict[str, dict[str, int]]) -> str:
    def table(name: str) -> str:
        return " / ".join(f"{split} {counts[name][split]}" for split in SPLITS)

    devices = "\n".join(
        f"| {d} | {base} | {low:,} to {high:,} |" for d, (base, (low, high)) in DEVICE_TYPES.items()
    )
    radios = ", ".join(f"{r} {ma}" for r, ma in RADIO_MA.items())
    kb_table = " / ".join(f"{split} {counts['kb_queries'][split]}" for split in KB_SPLITS)
    kb_sources = "; ".join(
        f"`{doc}` "
        + " + ".join(
            str(
                sum(
                    ("test" if heldout_index(i) else "dev") == split
                    for q in KB_QUERIES
                    if q.source == doc
                    for i in range(len(q.asks))
                )
            )
            for split in KB_SPLITS
        )
        for doc in ("policies.md", "products.md", "faq.md", "troubleshooting.md")
    )
    kb_topics = ", ".join(dict.fromkeys(q.topic for q in KB_QUERIES))
    handwritten = {label: len(texts) for label, texts in read_handwritten().items()}
    by_hand = ", ".join(f"{n} {label}" for label, n in handwritten.items())
    return f"""# Bundled datasets

Small datasets that ship inside lmforge, so the training examples, `lmforge quickstart`,
evaluation and retrieval work offline. They all describe **{COMPANY}**, a fictional
smart-home devices retailer, and agree with its documents in `company/`.

Everything here except the hand-written challenge splits (see "Challenge splits"
below) is generated by `scripts/make_datasets.py` from hand-written fact tables
and phrasing variants (Python standard library, fixed seed {SEED}). Edit the script, not
these files, then run `python scripts/make_datasets.py`; the output is byte-identical on
every run. Find files from code with `lmforge.data.bundled.dataset_path(name, split)`.

All data was written for lmforge and is released under **CC0-1.0** (public domain
dedication). Any resemblance to a real company or product is coincidental.

Every `.jsonl` file is UTF-8 JSON Lines, one object per line. Splits share no identical
record.

## company/ (Markdown documents)

`policies.md` (returns, refunds, warranty, shipping, tracking, cancellations, price
adjustments, payment, Brightnest Rewards, Brightnest Protect, support contacts),
`products.md` ({len(PRODUCTS)} products with prices, specs, connectivity, power, warranty),
`faq.md` and `troubleshooting.md` (symptoms, fixes and factory resets per product). They
are the knowledge base a retrieval-augmented assistant indexes, and every fact the dialogs
and test questions use appears in them.

## kb_queries/ (retrieval evaluation)

{kb_table} labeled search queries for the documents in `company/`, each
`{{"query": str, "source": "policies.md"|"products.md"|"faq.md"|"troubleshooting.md",
"evidence": str, "topic": str}}`. They ask the way customers type: questions, keyword
searches, casual wording and a few typos, paraphrasing the documents rather than quoting
them.

By source (dev + test): {kb_sources}. Topics: {kb_topics}.

`evidence` is a short verbatim span of `source` that answers the query, and it is the
relevance judgment: after the four documents are chunked, a retrieved chunk is relevant
when its source file name equals `source` and its text, with every run of whitespace
collapsed to one space, contains `evidence` (collapsed the same way; the Markdown wraps
lines). Score recall@k and MRR by the rank of the first relevant chunk. Each span lies
within one sentence, so chunks that break on sentences or paragraphs keep it whole, and it
occurs once in its document or only within one `##` section (a product's section repeats
some facts). Outside the topics factory_reset and support_contact, no other document
contains the span. Those two are answered elsewhere too: `products.md` repeats every reset
procedure word for word, and `policies.md`, `faq.md` and `troubleshooting.md` all list the
support contacts, so a lenient score also counts a chunk of another document that contains
`evidence`, compared case-insensitively. The base prices asked about are also in the
overview table at the top of `products.md`, which the label does not count.

Every fact is asked three ways: the first two phrasings are used only in `dev`, the third
only in `test`, so `test` asks about the same facts in wording `dev` never contains. Tune
a retriever (chunk size, hybrid weights, a fine-tuned embedder) on `dev` and report `test`.

## customer_service/ (chat, `messages` format)

{table("customer_service")} multi-turn support conversations:
`{{"messages": [{{"role": "system"|"user"|"assistant", "content": str}}, ...], "topic": str}}`.
Each starts with the same system prompt, then 2 to 4 user turns, each answered by the
assistant in 1 to 3 sentences that state the concrete fact. The first user turn names the
product or the order, and follow-ups refer back to it ("it", "the lock", "that order").

Topics: {", ".join(t.name for t in TOPICS)}.

Every list of user phrasings is split by position: two thirds are used only in `train`,
the remaining third only in `validation` and `test`. The held-out splits therefore ask about
the same facts with wording the training split never contains, which measures whether a
fine-tuned model learned the facts rather than the sentences.

`test_questions.jsonl` ({counts["customer_service"]["test_questions"]} records):
`{{"question": str, "answer": str, "keywords": [str]}}`, single held-out questions whose
answers are company-specific (the return window, the support email, prices, warranty
lengths) so a general model cannot know them. An answer is correct when it contains every
keyword, compared case-insensitively. Every keyword appears in `company/` and in at least
one training dialog.

`grounded_train.jsonl` (456 records) and `grounded_validation.jsonl` (53): single
questions answered from retrieved passages, for teaching a model to answer the way
`lmforge serve --kb` asks. Written by `scripts/make_grounded_dialogs.py` (not
`make_datasets.py`; seeded, byte-identical on every run) from the standalone user turns of
`train.jsonl` and `validation.jsonl` respectively (never from `test.jsonl`,
`test_questions.jsonl` or `challenge_questions.jsonl`) and a knowledge base over
`company/` built as the quickstart builds it (all-MiniLM-L6-v2, 128-token passages, 32
overlapping). `{{"messages": [system, user, assistant], "topic": "grounded", "kind": str,
"keywords": [str], "cited": int | null, "sources": [passage id]}}`: the system message is
exactly `Grounding.system_prompt(<the dialogs' system prompt>, passages)`, the server's
prompt with three numbered passages (`sources`, e.g. `policies.md#4`). `kind` is
`retrieved` (the top 3 passages the server retrieves, so the one holding the fact ranks
1st, 2nd or 3rd), `distractors` (the right passage at a seeded rank between the two
passages nearest the question that carry another number of the same kind: the refund
delay beside the return window, another product's price or warranty) or `unanswerable`
(no passage holds the fact). The assistant gives the dialog's answer with the marker
of the passage holding its fact (`cited`, e.g. "... within 45 days of delivery [2].") or,
when none does, says it is not sure and gives the support contacts. `keywords` are the
answer's facts (prices, durations, contacts) that the cited passage holds, or `["not
sure"]`.

`challenge_questions.jsonl` (98 records, written by hand; see "Challenge splits" below):
the same three fields plus `"source"` (the `company/` file that holds the fact),
`"evidence"` (a short verbatim span of that file, within one sentence, that contains
every keyword) and `"topic"`. The questions are phrased the way customers type in a chat:
informal, with typos, backstory and indirect wording ("bought the thermostat like 5 weeks
ago and honestly hate it, am I stuck with it?"), and several need the right product among
similar ones (reset button times, warranty lengths, prices). Score them like
`test_questions.jsonl`: an answer is correct when it contains every keyword,
case-insensitively. 88 records have one keyword, 10 have two.

By source: `policies.md` 33, `products.md` 24, `troubleshooting.md` 21, `faq.md` 20. By
topic: product_info 15, warranty 9, troubleshooting 9, product_price 8, shipping 7,
account 7, factory_reset 7, rewards 6, protect 6, returns 5, support_contact 5, refunds 4,
order_tracking 3, damaged_missing 2, careplus 2, payment 2, cancellation 1.


## sentiment/ (labeled text)

{table("sentiment")} product reviews: `{{"text": str, "label": "positive"|"neutral"|"negative"}}`,
about balanced across the three labels. The label is the reviewer's overall verdict, not a
keyword. Templated reviews ({" / ".join(f"{split} {n}" for split, n in REVIEW_TEMPLATES.items())}
per label) vary style, length and order: the verdict
first, last, in the middle or only implied; negations ("Not bad at all", "Never worked
properly"); mixed reviews whose verdict goes either way; "love", "great" and "perfect"
under every label (praise, sarcasm, "It would be perfect, except ..."); one-word reviews;
and a quarter rewritten the way people type on a phone (lowercase, shorthand, one typo).
{sum(handwritten.values())} reviews are written by hand in customers' voices ({by_hand}; in
the file `scripts/sentiment_reviews.txt`: 80% go to train, 10% to validation, 10% to test).
The last 330 (110 per label, 2026-12-03) were written from an audit of the training
split's label counts by topic (the service side: returns, refunds, exchanges, delivery,
order tracking, support, Rewards and Gold status, Protect; and star ratings were thin or
leaned negative), by writers who read neither challenge set nor any description of them.
Neutral reviews are factual, so-so, or mixed without a verdict. The generator reads the
hand-written `challenge.jsonl` only to leave out any review that would repeat one of its
reviews (compared without case and punctuation).

`challenge.jsonl` (210 reviews, written by hand; see "Challenge splits" below): `{{"text":
str, "label": ..., "kind": str}}`, 70 per label, about the products and about delivery,
support, returns, Rewards and Protect, in the voice of a shop page or an app store: from
one word ("meh.") to a paragraph, with slang ("lowkey obsessed", "mid"), typos, capitals,
emoji, negation ("not bad at all", "can't say I'm impressed"), mixed feelings with a clear
verdict, sarcasm ("oh great, another app that forgets my password"), comparisons and
questions. "love", "great" and "perfect" occur under all three labels (love 7 positive /
6 negative / 3 neutral, great 7 / 8 / 6, perfect 6 / 5 / 2), so the words alone do not
give the label away. `kind` tags the main trait of each review: mixed 29, short 23,
plain 23, slang 22, negation 22, factual 19, long 15, sarcasm 14, comparison 14,
question 11, caps 7, emoji 6, typo 5.

## Challenge splits (hand-written)

`sentiment/challenge.jsonl` and `customer_service/challenge_questions.jsonl` are not
generated: they were written by hand, by a different author than `scripts/make_datasets.py`,
who saw neither its templates nor any of its output, only this README's formats and the
facts in `company/`. They measure whether a model learned the task rather than the
generator's templates (a classifier can score 100 % on the generated validation split
by learning its phrasings). They are for final evaluation only: never train, tune, pick
checkpoints or select prompts on them. `tests/test_challenge_splits.py` checks that they
parse, that the labels are balanced, that every keyword lies in its evidence and every
evidence span in its `company/` document, and that no text equals one in the generated
train, validation or test splits (case and whitespace ignored). Edit them by hand; the
generator never writes them, and reads `sentiment/challenge.jsonl` only to leave
out generated reviews that would repeat one of its texts.

## domain_text/ (plain text)

{table("domain_text")} paragraphs of 60 to 200 words: `{{"text": str}}`. Product manual
excerpts, installation guides, knowledge-base articles, policy explanations, app guides and
firmware release notes, for continued pre-training (causal or masked language modeling).

## property/ (regression)

{table("property")} device descriptions with a numeric label:
`{{"text": str, "label": float}}`, the estimated battery life in hours under continuous use:

    hours = {EFFICIENCY} * capacity_mAh / (base_mA + radio_mA + {SCREEN_MA} * screen_on)
    label = round(hours * (1 + noise), 1),  noise ~ Normal(0, {NOISE})

| device | base_mA | capacity range (mAh) |
|---|---|---|
{devices}

radio_mA: {radios}. Color and weight appear in some descriptions but do not affect the
label. The descriptions use six phrasings.

## orders/ (the support agent's database)

`orders.json`: `{{"as_of", "customers", "orders"}}`, {COMPANY}'s customers and their
orders as of {ORDERS_AS_OF} (the day the agent's tools treat as today). Each order has an
`id` (`BN-` and 7 digits), `customer_id`, `placed`, `status` (delivered, shipped,
processing, cancelled or returned), `shipping`, `items` (`product`, `quantity`,
`unit_price`, `final_sale`) and `total`; shipped ones have `carrier`, `tracking`, `shipped`
and `estimated` or `delivered` dates. Products and prices are those of `products.md`.
`lmforge.agent.orders` loads it into SQLite and runs the agent's four tools over it
(`lookup_order`, `track_shipment`, `start_return`, `escalate_to_human`).

## tool_dialogs/ (tool use, `messages` format with `tool_calls`)

train {counts["tool_dialogs"]["train"]} / validation {counts["tool_dialogs"]["validation"]}:
a customer asks about an order; the assistant calls one tool (OpenAI's `tool_calls`
shape), the `tool` message holds exactly what `lmforge.agent.orders` returns for that call
on `orders/orders.json` (each split starts from the bundled data, so a return opened
earlier in a split is already open later), and the assistant answers from the result. One
dialog in six asks without an order number (the assistant asks for it) or asks a policy
question (answered without a tool). Every record carries the tools in its `tools` column;
the system prompt is `lmforge.agent.orders.SUPPORT_PROMPT`. Train uses two thirds of each
phrasing list, validation the held-out third.

`agent_test.jsonl` (hand-written, not by this script): 30 scripted conversations that
judge the agent (`lmforge eval agent`): `{{"id", "turns", "calls", "facts"}}`, the user's
turns, the tool calls expected (a name, or a list of acceptable names, and the
arguments that must match exactly; an escalation's free-text summary is not compared)
and the facts the final answer must state (each a list of acceptable spellings). They
were written by hand against `orders.json` in wording the generator does not use.

## preference/ (pairs of answers, `preference` format)

{table("preference")} pairs, and `test_questions.jsonl` ({counts["preference"]["test_questions"]}
records, `{{"question", "answer", "keywords"}}` as in customer_service/), for preference
tuning (the `dpo` task; docs/alignment.md). Each pair is
`{{"messages": [system, user], "chosen": str, "rejected": str, "rejected_kind": str,
"keywords": [str]}}`: the system prompt of the dialogs, a customer's question, and two
answers. The chosen answer states the right fact politely (a greeting and a closing drawn
from short lists, or none); the rejected one is `wrong_fact` (the same sentence with a
wrong value, as politely), `rude` (the right fact, said rudely: the pair is about manners
alone) or `off_topic` (a polite answer to another question). `keywords` holds the right
value, which every chosen answer contains.

The facts are {len(preference_facts())}: {len(PREFERRED_POLICY_FACTS)} policies (returns,
refunds, shipping, support contacts, rewards, account, cancellation, CarePlus, Protect,
order numbers) and each product's price and warranty, all as the company documents state
them. Each fact is asked four ways, and each way gives three pairs (one per rejected
kind): the first two phrasings are train, the third validation, the fourth test, so the
held-out splits ask the same facts in wording training never contains (held out by
question, not by fact: a fact training never saw could not be learned from preferences).
`test_questions.jsonl` asks the test phrasings with the right answer and its keyword, for
scoring greedy answers (`lmforge eval MODEL --task qa --data
src/lmforge/assets/datasets/preference/test_questions.jsonl`).

## guard/ (content-safety labels)

Prompts labeled safe or with one of seven unsafe categories, with benign look-alikes,
for the guardrails classifier. Written by `scripts/make_guard_dataset.py`; see
`guard/README.md`. `challenge_dev.jsonl` and `challenge_test.jsonl` are 373 messages
written by hand, separately from that script and by a different author, to judge the guard
on text people actually write; neither half is ever used for training or tuning, and
`challenge_test` is the held-out half to report.

## code_problems/ (natural language to Python)

Function-writing tasks with unit tests: `test` (33) for scoring generated code by pass@1
(`lmforge eval --task code`), `train` (62, no function shared with test) for RL with the
tests as reward (task `grpo`). Written by `scripts/make_code_problems.py`; see
`code_problems/README.md`.
"""


# --- Orders: the support agent's database, and tool dialogs over it -----------------------
# The tools and their results come from lmforge.agent.orders (standard library only), so
# each dialog's tool message holds exactly what the real tool returns on this database.

ORDERS_AS_OF = "2026-11-20"
FIRST_NAMES = ("Maya", "Daniel", "Priya", "Lucas", "Grace", "Omar", "Elena", "Jamal", "Sofia",
               "Ethan", "Hana", "Marcus", "Leila", "Noah", "Camila", "Victor", "Aisha", "Ben",
               "Rosa", "Kenji", "Tessa", "Ivan", "Nora", "Samuel")  # fmt: skip
LAST_NAMES = ("Okafor", "Lindqvist", "Raman", "Moreau", "Castillo", "Haddad", "Novak",
              "Price", "Tanaka", "Brennan", "Silva", "Weber", "Osei", "Kowalski", "Duarte",
              "Fischer", "Rahman", "Keller", "Vargas", "Ito", "Murphy", "Petrov", "Abbott",
              "Quinn")  # fmt: skip
ORDER_STATUSES = (("delivered", 44), ("shipped", 18), ("processing", 10), ("cancelled", 8),
                  ("returned", 6))  # fmt: skip


def _money(price: str) -> float:
    return float(price.lstrip("$"))


def make_orders(count: int = 86) -> dict:
    """Customers and their orders as of ORDERS_AS_OF: statuses in ORDER_STATUSES' shares,
    delivery dates from 1 to about 90 days back (so some returns are past the 45-day window),
    a few Final Sale items."""
    from datetime import date, timedelta

    rng = random.Random(SEED + 11)
    today = date.fromisoformat(ORDERS_AS_OF)
    customers = [
        {
            "id": f"C{1001 + i}",
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}@example.com",
        }
        for i, (first, last) in enumerate(zip(FIRST_NAMES, LAST_NAMES, strict=True))
    ]
    statuses = [s for s, n in ORDER_STATUSES for _ in range(n)]
    rng.shuffle(statuses)
    ids: set[str] = set()
    orders = []
    for status in statuses[:count]:
        order_id = f"BN-{rng.randrange(1_000_000, 10_000_000)}"
        while order_id in ids:
            order_id = f"BN-{rng.randrange(1_000_000, 10_000_000)}"
        ids.add(order_id)
        products = rng.sample(PRODUCTS, rng.choice((1, 1, 1, 2, 2, 3)))
        items = [
            {
                "product": p.name,
                "quantity": rng.choice((1, 1, 1, 2)),
                "unit_price": _money(p.price),
                "final_sale": status == "delivered" and rng.random() < 0.08,
            }
            for p in products
        ]
        shipping = rng.choice(("Standard", "Standard", "Expedited"))
        order = {
            "id": order_id,
            "customer_id": rng.choice(customers)["id"],
            "status": status,
            "shipping": shipping,
            "items": items,
            "total": round(sum(i["unit_price"] * i["quantity"] for i in items), 2),
        }
        if status == "processing":
            placed = today - timedelta(days=rng.randrange(0, 2))
        elif status == "shipped":
            placed = today - timedelta(days=rng.randrange(2, 5))
        elif status == "cancelled":
            placed = today - timedelta(days=rng.randrange(2, 40))
        else:
            placed = today - timedelta(days=rng.randrange(6, 95))
        order["placed"] = placed.isoformat()
        if status in {"shipped", "delivered", "returned"}:
            shipped = placed + timedelta(days=1)
            transit = 2 if shipping == "Expedited" else rng.randrange(3, 6)
            order.update(
                carrier="UPS",
                shipped=shipped.isoformat(),
                tracking="1Z"
                + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16)),
            )
            arrival = shipped + timedelta(days=transit)
            if status == "shipped":
                order["estimated"] = max(arrival, today + timedelta(days=1)).isoformat()
            else:
                order["delivered"] = min(arrival, today - timedelta(days=1)).isoformat()
        orders.append(order)
    return {"as_of": ORDERS_AS_OF, "customers": customers, "orders": orders}


# (asks: phrasings with {id} and {product}; the tool; its arguments beyond order_id)
TOOL_ASKS: dict[str, tuple[str, ...]] = {
    "lookup_order": (
        "What's the status of my order {id}?",
        "Can you check order {id} for me?",
        "Hi, I placed order {id}. What's happening with it?",
        "Could you tell me what's in order {id} and where it stands?",
        "Any update on {id}?",
        "Is my order {id} still processing?",
    ),
    "track_shipment": (
        "Where is my package? The order is {id}.",
        "Can I get the tracking number for {id}?",
        "When will order {id} arrive?",
        "Has {id} shipped yet?",
        "Please track my order {id}.",
        "Which carrier has my order {id}, and when does it get here?",
    ),
    "start_return": (
        "I want to return my {product} from order {id}. {why}",
        "Please start a return for order {id}. {why}",
        "Can I send back order {id}? {why}",
        "{why} I'd like to return it, order {id}.",
        "How do I return the {product}? Order {id}. {why}",
        "Return request for {id}: {why}",
    ),
}
RETURN_WHY = {
    "defective": ("It stopped working after a week.", "It's defective, it won't turn on.",
                  "It keeps failing and resetting itself."),
    "damaged": ("It arrived with a cracked case.", "The box was crushed and it's damaged.",
                "It came broken in the package."),
    "wrong_item": ("You sent me the wrong item.", "That's not what I ordered.",
                   "I received a different product."),
    "unwanted": ("I changed my mind.", "I don't need it anymore.",
                 "It's not a good fit for my home."),
}  # fmt: skip
ESCALATE_ASKS = (
    ("I've contacted you three times about order {id} and nothing is fixed. I want a person.",
     "Customer contacted support three times about order {id}, still unresolved; asks for "
     "a person."),
    ("Can I speak to a human, please? It's about {id}.",
     "Customer asks to speak to a person about order {id}."),
    ("This is unacceptable. Order {id} was charged twice. Get me a manager.",
     "Customer reports order {id} was charged twice and asks for a manager."),
    ("I need someone from your team to call me about order {id}.",
     "Customer asks for a call from the support team about order {id}."),
    ("Please escalate order {id}, the replacement never came.",
     "Customer says the replacement for order {id} never arrived; asks to escalate."),
    ("I'd like to file a complaint about order {id} with a real person.",
     "Customer wants to file a complaint about order {id} with a person."),
)  # fmt: skip
NO_ORDER_ASKS = (
    "Where is my order?", "I want to return something.", "Can you track my package?",
    "What's the status of my purchase?", "I need to send an item back.",
    "My delivery hasn't come. Can you check?",
)  # fmt: skip
NO_ORDER_ANSWERS = (
    "I can check that for you. What is your order number? It starts with BN- and is in "
    "your order confirmation email.",
    "Happy to help. Could you share your order number (BN- followed by 7 digits)?",
    "Sure. Please send me the order number from your confirmation email, like BN-1234567.",
)  # fmt: skip
POLICY_ASKS = (
    (("How long do I have to return something?", "What's your return window?",
      "Until when can I return an item?"),
     f"You can return items within {RETURN_DAYS} days of delivery."),
    (("Is there a fee for returns?", "Do returns cost anything?", "What does a return cost?"),
     f"Return labels are free for defective, damaged or wrong items; other returns have a "
     f"{RETURN_FEE} return shipping fee deducted from the refund."),
    (("How fast is expedited shipping?", "How long does expedited take?",
      "What's the expedited delivery time?"),
     "Expedited shipping takes 2 business days and costs $12.99."),
)  # fmt: skip


def _date_words(iso: str) -> str:
    from datetime import date

    day = date.fromisoformat(iso)
    return f"{day.strftime('%B')} {day.day}"


def _answer(name: str, result: dict, rng: random.Random) -> str:
    """The assistant's reply after a tool result: the facts the result holds."""
    if "error" in result:
        if name == "start_return" and result.get("eligible") is False:
            return rng.choice(
                (
                    f"I'm sorry, I can't start that return: {result['error']}.",
                    f"Unfortunately that order can't be returned: {result['error']}.",
                )
            )
        return f"I couldn't do that: {result['error']}."
    if name == "lookup_order":
        items = ", ".join(f"{i['quantity']} x {i['product']}" for i in result["items"])
        where = {
            "delivered": lambda: f"was delivered on {_date_words(result.get('delivered', ''))}",
            "shipped": lambda: (
                f"shipped on {_date_words(result.get('shipped', ''))} and is on its way"
            ),
            "processing": lambda: f"is being prepared (placed {_date_words(result['placed'])})",
            "cancelled": lambda: "was cancelled",
            "returned": lambda: "was returned",
            "return_started": lambda: f"has return {result.get('return')} open",
        }[result["status"]]()
        return (
            f"Order {result['order_id']} {where}. It holds {items}, "
            f"${result['total']:.2f} in total."
        )
    if name == "track_shipment":
        if "note" in result:
            return (
                f"Order {result['order_id']} hasn't shipped yet; it ships within 1 business "
                "day, and you'll get the tracking number by email."
            )
        if "delivered" in result:
            return (
                f"Order {result['order_id']} was delivered on "
                f"{_date_words(result['delivered'])} by {result['carrier']} (tracking "
                f"{result['tracking_number']})."
            )
        return (
            f"Order {result['order_id']} shipped with {result['carrier']} on "
            f"{_date_words(result['shipped'])}, tracking number {result['tracking_number']}; "
            f"it should arrive by {_date_words(result['estimated_delivery'])}."
        )
    if name == "start_return":
        fee = (
            "the label is free"
            if not result["label_fee"]
            else f"a ${result['label_fee']:.2f} return shipping fee is deducted"
        )
        return (
            f"Your return {result['return_id']} is open. A UPS return label is on its way "
            f"to your email; {fee}, so your refund will be ${result['refund']:.2f}."
        )
    return (
        f"I've passed this to our support team: ticket {result['ticket']}. Someone will "
        f"get back to you within {result['response_within']}."
    )


def make_tool_dialogs(orders: dict, counts: dict[str, int]) -> dict[str, list[dict]]:
    """Dialogs in the ``messages`` format with ``tool_calls``: a customer asks, the
    assistant calls a tool (or asks for the order number, or answers a policy question
    without one), the tool's real result follows, and the assistant answers from it.
    Train uses two thirds of each phrasing list, validation the held-out third. Every
    record carries the tools (its ``tools`` column)."""
    sys.path.insert(0, str(ROOT / "src"))  # lmforge itself, installed or not
    from lmforge.agent.orders import (
        SUPPORT_PROMPT,
        TOOLS,
        OrderTools,
        create_database,
        result_text,
    )

    rng = random.Random(SEED + 13)
    order_ids = [o["id"] for o in orders["orders"]]
    from datetime import date

    today = date.fromisoformat(orders["as_of"])
    returnable = [o["id"] for o in orders["orders"] if o["status"] == "delivered"
                  and (today - date.fromisoformat(o["delivered"])).days <= 45]  # fmt: skip
    product_of = {o["id"]: o["items"][0]["product"] for o in orders["orders"]}
    result: dict[str, list[dict]] = {}
    for split, count in counts.items():
        heldout = split != "train"
        tools = OrderTools(create_database(orders))  # each split starts from the bundled data
        dialogs: list[dict] = []
        fresh = list(returnable)  # not yet returned in this split
        while len(dialogs) < count:
            kind = len(dialogs) % 6
            system = {"role": "system", "content": SUPPORT_PROMPT}
            if kind == 4:
                if rng.random() < 0.5:
                    ask = pick_wording(rng, NO_ORDER_ASKS, heldout)
                    answer = rng.choice(NO_ORDER_ANSWERS)
                else:
                    asks, answer = rng.choice(POLICY_ASKS)
                    ask = pick_wording(rng, asks, heldout)
                dialogs.append(
                    {
                        "messages": [
                            system,
                            {"role": "user", "content": ask},
                            {"role": "assistant", "content": answer},
                        ],
                        "tools": TOOLS,
                    }
                )
                continue
            if kind in (2, 3) and fresh and rng.random() < 0.6:
                order_id = fresh.pop(rng.randrange(len(fresh)))
            else:
                order_id = rng.choice(order_ids)
            if kind == 5:
                index = rng.randrange(len(ESCALATE_ASKS))
                while heldout_index(index) != heldout:
                    index = rng.randrange(len(ESCALATE_ASKS))
                ask, summary = (t.format(id=order_id) for t in ESCALATE_ASKS[index])
                name, arguments = "escalate_to_human", {"summary": summary, "order_id": order_id}
            else:
                name = ("lookup_order", "track_shipment", "start_return", "start_return")[kind]
                reason = rng.choice(tuple(RETURN_WHY))
                why = pick_wording(rng, RETURN_WHY[reason], heldout)
                ask = pick_wording(rng, TOOL_ASKS[name], heldout).format(
                    id=order_id, product=product_of[order_id], why=why
                )
                arguments = {"order_id": order_id}
                if name == "start_return":
                    arguments["reason"] = reason
            outcome = tools.call(name, arguments)
            call_id = f"call_{len(dialogs):04d}"
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            dialogs.append(
                {
                    "messages": [
                        system,
                        {"role": "user", "content": ask.strip()},
                        {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": call_id, "content": result_text(outcome)},
                        {"role": "assistant", "content": _answer(name, outcome, rng)},
                    ],
                    "tools": TOOLS,
                }
            )
        result[split] = dialogs
    return result


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    path.write_text("".join(lines), encoding="utf-8", newline="\n")


def reflow(markdown: str, width: int = 90) -> str:
    """Rewrap plain paragraphs (not headings, tables, lists or code) to one width."""
    blocks = re.split(r"\n{2,}", markdown.strip("\n"))
    special = re.compile(r"^(#|\||- |\d+\. |    |`)")
    return "\n\n".join(
        block
        if any(special.match(line) for line in block.splitlines())
        else textwrap.fill(
            " ".join(block.split()), width, break_on_hyphens=False, break_long_words=False
        )
        for block in blocks
    )


def write_text(path: Path, text: str) -> None:
    path.write_text(reflow(text) + "\n", encoding="utf-8", newline="\n")


def build(out: Path) -> dict[str, dict[str, int]]:
    """Write every dataset under out; returns the record count of each file."""
    datasets = {
        "customer_service": make_dialogs({"train": 160, "validation": 20, "test": 20}),
        "sentiment": make_reviews(REVIEW_TEMPLATES),
        "domain_text": make_domain_text({"train": 200, "validation": 25, "test": 25}),
        "property": make_property({"train": 240, "validation": 30, "test": 30}),
    }
    datasets["customer_service"]["test_questions"] = make_test_questions()
    datasets["preference"] = make_preferences()
    docs = {
        "policies.md": policies_md(),
        "products.md": products_md(),
        "faq.md": faq_md(),
        "troubleshooting.md": troubleshooting_md(),
    }
    datasets["kb_queries"] = make_kb_queries({name: reflow(text) for name, text in docs.items()})
    orders = make_orders()
    datasets["tool_dialogs"] = make_tool_dialogs(orders, {"train": 240, "validation": 30})
    counts: dict[str, dict[str, int]] = {}
    for name, splits in datasets.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        counts[name] = {}
        for split, records in splits.items():
            write_jsonl(folder / f"{split}.jsonl", records)
            counts[name][split] = len(records)
    (out / "orders").mkdir(parents=True, exist_ok=True)
    (out / "orders" / "orders.json").write_text(
        json.dumps(orders, indent=1) + "\n", encoding="utf-8", newline="\n"
    )
    company = out / "company"
    company.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        write_text(company / name, text)
    write_text(out / "README.md", readme_md(counts))
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    counts = build(args.out)
    for name, splits in counts.items():
        print(f"{name}: " + ", ".join(f"{split} {n}" for split, n in splits.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
