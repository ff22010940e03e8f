package contain

// Exported for the black-box tests in contain_test.

// PostCall is postCall.
type PostCall = postCall

// Post is post.
var Post = post

// RedactURL is redactURL.
var RedactURL = redactURL

// PostSnippet and PostDrain bound what post reads of a body.
const (
	PostSnippet = postSnippet
	PostDrain   = postDrain
)

// LaneParallel and LaneDepth bound one destination's lane in Run.
const (
	LaneParallel = webhookLaneParallel
	LaneDepth    = webhookLaneDepth
)
