from pathlib import Path

from dripline.campaign import load_campaign

ROOT = Path(__file__).resolve().parent.parent


def test_ketamine_campaign_loads_six_steps_in_order():
    campaign = load_campaign(ROOT / "campaigns" / "ketamine-therapy")
    assert [s.number for s in campaign.steps] == [1, 2, 3, 4, 5, 6]
    assert [s.day for s in campaign.steps] == [0, 2, 4, 6, 8, 10]
    assert campaign.steps[0].send_immediately
    assert campaign.schedule.timezone == "America/Los_Angeles"
