namespace Serve.Actors.Protocol;

/// <summary>
/// A value, or the error that stands in its place: the one "value or ServeError" of every hop (reading a
/// body, choosing a replica, decoding and running a batch). Deconstructs as <c>var (value, error)</c>.
/// </summary>
public readonly record struct Result<T>(T? Value, ServeError? Error)
{
    public static implicit operator Result<T>(T value) => new(value, null);

    public static implicit operator Result<T>(ServeError error) => new(default, error);
}
