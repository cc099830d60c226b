package app

import (
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"reelfeed/config"
)

// NewLogger returns a console logger when stderr is a terminal (or format
// is "console") and JSON otherwise, so `make run` is readable and a
// deployment's logs are machine-parsable.
func NewLogger(c config.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(strings.ToLower(c.Level))
	if err != nil {
		return nil, err
	}
	console := c.Format == "console" || (c.Format == "auto" && term.IsTerminal(int(os.Stderr.Fd())))
	var zc zap.Config
	if console {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		zc.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		zc.DisableStacktrace = true
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
		zc.Sampling = nil // access logs must not be sampled away
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	return zc.Build()
}
