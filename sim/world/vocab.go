package world

// categorySpec is one content category: how popular it is across the whole
// population and the tags its videos draw from.
type categorySpec struct {
	name string
	pop  float64
	tags []string
}

var categorySpecs = [...]categorySpec{
	{"comedy", 1.0, []string{"sketch", "prank", "standup", "parody", "memes", "bloopers"}},
	{"music", 0.9, []string{"cover", "guitar", "singing", "hiphop", "kpop", "piano"}},
	{"food", 0.8, []string{"recipe", "street-food", "baking", "mukbang", "bbq", "vegan"}},
	{"dance", 0.7, []string{"choreography", "dance-challenge", "hiphop-dance", "ballet", "kpop-dance", "dance-tutorial"}},
	{"gaming", 0.7, []string{"minecraft", "fortnite", "speedrun", "esports", "retro-games", "game-clips"}},
	{"pets", 0.6, []string{"cats", "dogs", "puppies", "birds", "aquarium", "funny-animals"}},
	{"sports", 0.6, []string{"football", "basketball", "skateboarding", "highlights", "cricket", "sports-fails"}},
	{"beauty", 0.5, []string{"makeup", "skincare", "nails", "hair", "grwm", "beauty-hacks"}},
	{"travel", 0.5, []string{"beaches", "hiking", "city-walk", "roadtrip", "camping", "hotels"}},
	{"fashion", 0.4, []string{"outfit", "streetwear", "thrift", "ootd", "sneakers", "styling"}},
	{"fitness", 0.4, []string{"gym", "yoga", "running", "calisthenics", "home-workout", "nutrition"}},
	{"tech", 0.4, []string{"gadgets", "unboxing", "coding", "smartphones", "ai", "pc-build"}},
	{"education", 0.3, []string{"science", "history", "math", "language-learning", "space", "facts"}},
	{"diy", 0.3, []string{"woodworking", "crafts", "home-repair", "gardening", "upcycling", "3d-printing"}},
	{"cars", 0.3, []string{"supercars", "car-review", "drifting", "restoration", "motorbikes", "ev"}},
	{"news", 0.3, []string{"politics", "world-news", "finance", "weather", "local-news", "interviews"}},
}

// genericTags cut across categories; users may like or dislike them too.
var genericTags = [...]string{"funny", "satisfying", "asmr", "tutorial", "vlog", "challenge", "trending", "wholesome"}

type regionSpec struct {
	code, language string
	share          float64
	// boost multiplies the chance that a user from here favours a category.
	boost map[string]float64
}

var regionSpecs = [...]regionSpec{
	{"us", "en", 0.28, map[string]float64{"fitness": 1.3, "sports": 1.2, "comedy": 1.1}},
	{"in", "hi", 0.20, map[string]float64{"comedy": 1.4, "education": 1.6, "music": 1.3}},
	{"br", "pt", 0.15, map[string]float64{"music": 1.6, "dance": 1.5, "sports": 1.4}},
	{"id", "id", 0.10, map[string]float64{"beauty": 1.3, "gaming": 1.4, "food": 1.3}},
	{"jp", "ja", 0.08, map[string]float64{"gaming": 1.6, "food": 1.4, "tech": 1.3}},
	{"de", "de", 0.07, map[string]float64{"cars": 1.6, "diy": 1.4, "news": 1.2}},
	{"mx", "es", 0.07, map[string]float64{"music": 1.4, "food": 1.3, "comedy": 1.3}},
	{"gb", "en", 0.05, map[string]float64{"news": 1.3, "pets": 1.3, "sports": 1.2}},
}

// ageBoosts and genderBoosts raise (or lower) the chance that a user with
// those attributes favours a category: the signal a cold-start recommender
// can use before the user has done anything. Read-only tables.
var ageBoosts = [...]struct {
	below int
	boost map[string]float64
}{
	{25, map[string]float64{"dance": 2.0, "gaming": 1.8, "music": 1.3, "beauty": 1.3, "news": 0.4, "diy": 0.6}},
	{40, map[string]float64{"fitness": 1.5, "tech": 1.3, "travel": 1.3, "food": 1.2}},
	{1 << 30, map[string]float64{"news": 2.0, "diy": 1.8, "food": 1.5, "travel": 1.5, "education": 1.3, "dance": 0.5, "gaming": 0.5}},
}

var genderBoosts = map[string]map[string]float64{
	"female": {"beauty": 2.5, "fashion": 2.2, "dance": 1.3, "cars": 0.5},
	"male":   {"cars": 2.5, "tech": 1.8, "gaming": 1.5, "sports": 1.6, "beauty": 0.4, "fashion": 0.6},
}

func demographicBoost(category string, age int, gender string) float64 {
	b := 1.0
	for _, a := range ageBoosts {
		if age < a.below {
			b *= factor(a.boost, category)
			break
		}
	}
	return b * factor(genderBoosts[gender], category)
}

// factor reads a multiplier, 1 when the table does not mention the key.
func factor(m map[string]float64, key string) float64 {
	if f, ok := m[key]; ok {
		return f
	}
	return 1
}
