"""Generator of the city dispatch guide (派单指引): content as Python data, written to shared/data/city_guide.json."""
