namespace Serve.Actors.Models;

/// <summary>
/// The model a replica serves, and the one it let go of while a batch still ran on it: a reload never pulls
/// a model out from under its batch; the old one is freed when that batch ends.
/// </summary>
internal sealed class ModelSlot
{
    private ILoadedModel? _retiring;

    public ILoadedModel? Current { get; private set; }

    public void Install(ILoadedModel model) => Current = model;

    /// <summary>Lets go of the current model: freed now, or retired while <paramref name="batchRunning"/> on it.</summary>
    public void Release(bool batchRunning)
    {
        if (Current is not { } model)
        {
            return;
        }

        Current = null;
        if (!batchRunning)
        {
            Free(model);
            return;
        }

        BatchEnded();
        _retiring = model;
    }

    /// <summary>The running batch ended: a model retired under it is freed.</summary>
    public void BatchEnded()
    {
        if (_retiring is { } retiring)
        {
            _retiring = null;
            Free(retiring);
        }
    }

    public void FreeAll()
    {
        Release(batchRunning: false);
        BatchEnded();
    }

    private static void Free(ILoadedModel model) => _ = model.DisposeAsync().AsTask();
}
